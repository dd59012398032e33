"""Operators and time of the ENAS loop's own steps, per search preset (issue 31).

    python benchmarks/enas_step_ops.py --data-dir DATA [--steps 6] [--batch B] [--device cpu]
        [--precision fp32] [--presets P ...] [--json OUT]

For each preset it builds the search the way ``torchnas search`` does (the preset, its space,
controller and shared weights, at its batch size unless ``--batch`` gives one), runs one
shared-weight epoch of ``--steps`` steps to warm up, then measures through the loop's own code:

* **shared step**: ``ENASSearch.train_shared_epoch`` over ``--steps`` minibatches (BPTT windows for
  the recurrent space), each with its own sampled architecture: operators per step (the CPU
  profiler's ``aten::`` operators called from Python, "top"; and every ``aten::`` operator
  including those nested inside others and the backward pass's, "all": a proxy for kernel
  launches) and milliseconds per step (median of 3 epochs);
* **controller draw**: one architecture drawn from the policy (``strategy.propose(1)``);
* **controller update**: ``ask`` and ``tell`` of one REINFORCE update (``batch_size`` samples, the
  reward forward passes excluded: fixed rewards), and the operators of one reward (one
  validation minibatch's forward pass).

On a GPU (``--device cuda``) the step's time is also split into the device's busy time (the
profiler's kernel time) and the rest, the time the device waits for the host. Run it on an
older checkout (``PYTHONPATH=OLD/src``) for the "before" figures: it uses only the loop's public
methods.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
from torch.profiler import ProfilerActivity, profile

from torchnas.config import RunConfig, apply_override, load_preset
from torchnas.enas import build_enas

PRESETS = ("enas-micro", "enas-macro", "enas-nb201", "enas-rnn")


def _ops(fn, cuda: bool) -> tuple[int, int, float]:
    """(top-level aten operators, all aten operators, device kernel milliseconds) of fn()."""
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=acts) as prof:
        fn()
        if cuda:
            torch.cuda.synchronize()
    events = [e for e in prof.events() if e.name.startswith("aten::")]
    top = [e for e in events if e.cpu_parent is None or not e.cpu_parent.name.startswith("aten::")]
    kernel_ms = 0.0
    if cuda:
        kernel_ms = sum(e.self_device_time_total for e in prof.key_averages()) / 1000
    return len(top), len(events), kernel_ms


def measure(preset: str, args) -> dict:
    cfg = load_preset(preset)
    batch = args.batch or cfg["enas"].get("batch_size", 128)
    sets = [f"enas.max_train_batches={args.steps}", f"enas.device={args.device}", f"enas.batch_size={batch}"]
    if args.precision:
        sets.append(f"enas.precision={args.precision}")
    if preset == "enas-rnn":
        sets.append(f"enas.data.train_tokens={batch * 35 * (args.steps + 2)}")
    for s in sets:
        apply_override(cfg, s)
    cfg["enas"]["data"] = {**cfg["enas"]["data"], "data_dir": args.data_dir}
    _, search = build_enas(RunConfig.of(cfg))
    cuda = search.shared.training.device.type == "cuda"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    search.train_shared_epoch()                                    # warm-up: buffers, allocator
    times = []
    for _ in range(3):
        sync()
        t = time.perf_counter()
        search.train_shared_epoch()
        sync()
        times.append((time.perf_counter() - t) / args.steps)
    top, every, kernel_ms = _ops(search.train_shared_epoch, cuda)
    strategy = search.strategy
    draw = _ops(lambda: strategy.propose(1), False)
    m = getattr(strategy, "batch_size", 1)

    def update():
        archs = strategy.ask()
        strategy.tell(archs, [0.5] * len(archs))
    upd = _ops(update, False)
    arch = strategy.propose(1)[0]
    valid = search.valid_batch()
    reward = _ops(lambda: search.reward(arch, valid), cuda)
    step_ms = statistics.median(times) * 1000
    unit = "tok" if preset == "enas-rnn" else "img"
    per_step = batch * (35 if preset == "enas-rnn" else 1)
    return {"preset": preset, "steps": args.steps, "batch": batch, "device": str(search.shared.training.device),
            "shared_top_ops": round(top / args.steps), "shared_all_ops": round(every / args.steps),
            "ms_per_step": round(step_ms, 2), f"{unit}_per_s": round(per_step / step_ms * 1000, 1),
            "device_busy_ms": round(kernel_ms / args.steps, 2) if cuda else None,
            "draw_top_ops": draw[0], "draw_all_ops": draw[1], "update_top_ops": upd[0], "update_all_ops": upd[1],
            "update_samples": m, "reward_top_ops": reward[0], "reward_all_ops": reward[1]}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", required=True, help="data root with cifar10/ (unpacked) and ptb/")
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--batch", type=int, default=None, help="minibatch (default: each preset's own)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--precision", default=None, help="auto, bf16 or fp32 (left out: the loop's default)")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--presets", nargs="+", default=list(PRESETS))
    p.add_argument("--json", default=None, help="also write the rows here")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {args.device}, "
          f"batch {args.batch or 'of each preset'}, {args.steps} steps, precision {args.precision or 'default'}")
    print("| preset | batch | shared step: ops top / all | ms per step | items/s | device busy ms | controller draw: ops "
          "top / all | controller update (m samples): ops top / all | one reward: ops top / all |")
    print("|---|---|---|---|---|---|---|---|---|")
    rows = []
    for preset in args.presets:
        r = measure(preset, args)
        rows.append(r)
        rate = r.get("img_per_s") or r.get("tok_per_s")
        busy = "–" if r["device_busy_ms"] is None else r["device_busy_ms"]
        print(f"| {preset} | {r['batch']} | {r['shared_top_ops']:,} / {r['shared_all_ops']:,} | {r['ms_per_step']} | {rate:,.0f} | "
              f"{busy} | {r['draw_top_ops']:,} / {r['draw_all_ops']:,} | ({r['update_samples']}) "
              f"{r['update_top_ops']:,} / {r['update_all_ops']:,} | {r['reward_top_ops']:,} / {r['reward_all_ops']:,} |",
              flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
