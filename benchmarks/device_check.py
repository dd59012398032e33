"""The paper-scale configurations on a GPU, in a few steps each: do they fit, how fast are they,
and does a resumed run repeat the uninterrupted one on the device?

    python benchmarks/device_check.py [--steps 5] [--device cuda] [--out device_check.json]

Synthetic inputs (CIFAR-shaped images, PTB-sized vocabulary), so it needs no data files. For
each preset it builds the network the preset trains, at the preset's batch size, and times
SGD steps after one warm-up step (ms/step, images or tokens per second, peak device memory):

* ``nas-cnn``: a random child of the Zoph & Le space at its deepest (15 layers);
* ``enas-micro`` / ``enas-macro``: the shared-weight search networks, a new architecture per step;
* ``enas-micro-final`` / ``enas-macro-final``: the published networks at final size;
* ``enas-rnn`` / ``enas-rnn-final``: the shared language model (hidden 200, batch 128) and the
  published cell at hidden 800 (batch 64), BPTT 35, with the presets' dropouts;
* ``resume``: a language model trained 4 windows straight vs 2 + checkpoint + 2 in a fresh
  object (exact when the device RNG is saved and restored).

On a CPU it runs the same code (use ``--steps 1 --small`` for a smoke test).
"""
from __future__ import annotations

import argparse
import json
import random
import time

import torch
import torch.nn.functional as F

from torchnas.config import load_preset
from torchnas.data.ptb import Corpus
from torchnas.training import LMTraining
from torchnas.spaces import space_from_config


def _sync(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize()


def _time_steps(step, steps: int, dev) -> float:
    step()                                              # warm-up (allocations, kernel choice)
    _sync(dev)
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    _sync(dev)
    return (time.perf_counter() - t0) / steps


def image_check(name, model_fn, batch, dev, steps, image=32) -> dict:
    torch.manual_seed(0)
    model, arch_fn = model_fn()
    model = model.to(dev).to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True)
    x = torch.randn(batch, 3, image, image, device=dev).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (batch,), device=dev)
    model.train()

    def step():
        out = model(x, arch_fn()) if arch_fn else model(x)
        loss = sum(F.cross_entropy(o, y) for o in (out if isinstance(out, tuple) else (out,)))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    s = _time_steps(step, steps, dev)
    return {"check": name, "batch": batch, "ms_per_step": round(1000 * s, 1), "images_per_s": round(batch / s, 1),
            "params": sum(p.numel() for p in model.parameters())}


def lm_check(name, preset_net, batch, arch, space, dev, steps, vocab=10_000) -> dict:
    torch.manual_seed(0)
    n = batch * 35 * (steps + 2) + 1
    tokens = torch.randint(0, vocab, (n,))
    corpus = Corpus([str(i) for i in range(vocab)], {}, tokens, tokens[:batch * 36], tokens[:2])
    model = space.language_model(arch, vocab, **preset_net)
    t = LMTraining(model, corpus, batch_size=batch, variable_bptt=False, lr=20.0, grad_clip=0.25,
                   weight_decay=8e-7, max_batches=1, device=str(dev))
    rng = random.Random(0)
    arch_fn = (lambda: space.random(rng)) if arch is None else None
    t.train_epoch(arch_fn)                              # warm-up
    t.max_batches = steps
    out = t.train_epoch(arch_fn)
    return {"check": name, "batch": batch, "tokens_per_s": round(out["tokens_per_s"], 1),
            "ms_per_step": round(1000 * out["seconds"] / steps, 1),
            "params": sum(p.numel() for p in model.parameters())}


def resume_check(dev, hidden: int) -> dict:
    """4 windows straight vs 2 + state_dict + 2 in a fresh object: the same loss and weights?"""
    space = space_from_config({"name": "enas-rnn"})
    arch = space.random(random.Random(0))
    tokens = torch.randint(0, 500, (64 * 35 * 5 + 1,), generator=torch.Generator().manual_seed(0))
    corpus = Corpus([str(i) for i in range(500)], {}, tokens, tokens[:64 * 36], tokens[:2])
    drop = {"word": 0.1, "embedding": 0.2, "input": 0.5, "hidden": 0.25, "output": 0.5}

    def fresh():
        torch.manual_seed(0)
        return LMTraining(space.language_model(arch, 500, hidden, dropout=drop), corpus, batch_size=64,
                          epochs=2, variable_bptt=True, max_batches=2, seed=1, device=str(dev))
    ref = fresh()
    ref_losses = [ref.train_epoch()["loss"] for _ in range(2)]
    part = fresh()
    part.train_epoch()
    state = part.state_dict()
    torch.manual_seed(123)
    if dev.type == "cuda":
        torch.cuda.manual_seed_all(123)                 # a new process would start elsewhere
    resumed = fresh()
    resumed.load_state_dict(state)
    loss = resumed.train_epoch()["loss"]
    same = all(torch.equal(a, b) for a, b in zip(ref.model.state_dict().values(), resumed.model.state_dict().values()))
    return {"check": "resume", "exact": loss == ref_losses[1] and same, "loss_ref": ref_losses[1], "loss_resumed": loss}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--small", action="store_true", help="small batches (a CPU smoke test)")
    p.add_argument("--out", help="also write the records as JSON")
    args = p.parse_args()
    dev = torch.device(args.device)
    print(f"# {torch.cuda.get_device_name(dev) if dev.type == 'cuda' else 'cpu'}, torch {torch.__version__}")
    b = (lambda full: 4) if args.small else (lambda full: full)
    records = []

    def run(fn, *a):
        if dev.type == "cuda":
            torch.cuda.reset_peak_memory_stats(dev)
        try:
            rec = fn(*a)
        except Exception as e:                           # e.g. out of memory: report and go on
            rec = {"check": a[0] if a and isinstance(a[0], str) else fn.__name__, "error": f"{type(e).__name__}: {e}"}
        if dev.type == "cuda":
            rec["peak_gib"] = round(torch.cuda.max_memory_allocated(dev) / 2 ** 30, 2)
        print(json.dumps(rec), flush=True)
        records.append(rec)

    cnn = space_from_config(load_preset("nas-cnn")["space"])
    run(image_check, "nas-cnn", lambda: (cnn.child(cnn.random(random.Random(0)), 3, 10), None), b(128), dev, args.steps)
    for preset in ("enas-micro", "enas-macro"):
        cfg = load_preset(preset)
        space, rng = space_from_config(cfg["space"]), random.Random(0)
        net = {k: v for k, v in cfg["enas"]["net"].items() if k != "aux_head"}
        run(image_check, preset, lambda: (space.shared(3, 10, **net), lambda: space.random(rng)),
            b(cfg["enas"]["batch_size"]), dev, args.steps)
    for preset in ("enas-micro-final", "enas-macro-final"):
        cfg = load_preset(preset)
        space = space_from_config(cfg["space"])
        net = dict(cfg["final_net"])
        run(image_check, preset, lambda: (space.child(space.parse(cfg["arch"]), 3, 10, **net), None),
            b(cfg["train"]["batch_size"]), dev, args.steps)
    search = load_preset("enas-rnn")
    rnn = space_from_config(search["space"])
    run(lm_check, "enas-rnn", search["enas"]["net"], b(search["enas"]["batch_size"]), None, rnn, dev, args.steps)
    final = load_preset("enas-rnn-final")
    frnn = space_from_config(final["space"])
    run(lm_check, "enas-rnn-final", final["final_net"], b(final["train"]["batch_size"]), frnn.parse(final["arch"]),
        frnn, dev, args.steps)
    run(resume_check, dev, 64 if args.small else 200)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(records, f, indent=1)


if __name__ == "__main__":
    main()
