"""Issue 30: the tiny Zoph & Le recurrent-cell search against random tree cells and an LSTM, at
equal size and equal training, on Penn Treebank.

    python benchmarks/nas_rnn_tiny.py --data-dir DATA [--seeds 0 1 2] [--runs runs/nas-rnn-bench]
        [--workers 2] [--json OUT]

For each seed S:

1. ``torchnas search --preset nas-rnn-tiny --seed S --no-retrain`` (REINFORCE), and the same with
   ``--strategy random``: random tree cells, as many children as the search trained. Each run
   lives in ``RUNS/{reinforce,random}-S`` and resumes if it was cut short (a finished one is read).
2. The best cell of each (its validation perplexity after the children's training), and the
   space's two-layer LSTM baseline (``final_net.cell: lstm``: the same embedding and tied
   softmax) at the hidden size whose parameter count is nearest the cells' model, are trained from
   scratch with the preset's ``train`` and ``final_net`` settings on the preset's data (the same
   epochs, batches, learning rate and seed for all three), and judged by their test perplexity
   on the whole PTB test split.

Prints one row per seed and model and the means and spreads over seeds; ``--json`` keeps them.
The search never sees the test split; the retraining's numbers come after the searches.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from torchnas import api
from torchnas.config import load_preset
from torchnas.data.ptb import load_ptb
from torchnas.spaces import get_space
from torchnas.training import LMTraining, arch_seed

PRESET = "nas-rnn-tiny"


def _search(strategy: str, seed: int, runs: Path, data_dir: str, workers: int) -> dict:
    out = runs / f"{strategy}-{seed}"
    t0 = time.perf_counter()
    if (out / "best.json").exists() and (out / "checkpoint.pt").exists() and _finished(out):
        run = api.Run(out)
    elif (out / "config.yaml").exists():
        run = api.search(resume=out, data_dir=data_dir, retrain=False)
    else:
        run = api.search(preset=PRESET, strategy=strategy, seed=seed, data_dir=data_dir, workers=workers,
                         out=out, retrain=False)
    evals = run.log("evaluations.jsonl")
    return {"arch": run.best["arch"], "children": len(evals), "valid_ppl": run.best["metrics"]["valid_ppl"],
            "search_min": round(max(e["elapsed_s"] for e in evals) / 60, 1), "wall_min": round((time.perf_counter() - t0) / 60, 1)}


def _finished(out: Path) -> bool:
    cfg = load_preset(PRESET)
    with open(out / "evaluations.jsonl") as f:
        return sum(1 for _ in f) >= cfg["budget"]


def _lstm_model(space, vocab: int, target: int, net: dict):
    """The space's LSTM baseline (``final_net.cell: lstm``: the same stacked layers, embedding and
    tied softmax) at the hidden size whose parameter count is nearest ``target``."""
    sizes = {h: space.parameter_arithmetic(vocab, {**net, "hidden_size": h, "cell": "lstm"})[0]
             for h in range(4, 4 * net["hidden_size"])}
    h = min(sizes, key=lambda k: (abs(sizes[k] - target), k))
    return space.language_model(None, vocab, **{**net, "hidden_size": h, "cell": "lstm"}), h


def _train(model, corpus, settings: dict, seed: int) -> dict:
    t = LMTraining(model, corpus, seed=seed, device="cpu", **settings)
    t0 = time.perf_counter()
    for _ in range(t.epochs):
        out = t.train_epoch()
        if "diverged" in out:
            return {"test_ppl": float("inf"), "diverged": out["diverged"]}
    return {"test_ppl": t.evaluate("test")["ppl"], "valid_ppl": t.evaluate("valid")["ppl"],
            "train_min": round((time.perf_counter() - t0) / 60, 1)}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", required=True)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--runs", default="runs/nas-rnn-bench")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--json", default=None)
    args = p.parse_args()
    runs = Path(args.runs)
    cfg = load_preset(PRESET)
    space = get_space("nas-rnn", **{k: v for k, v in cfg["space"].items() if k != "name"})
    corpus = load_ptb(args.data_dir, **{k: v for k, v in cfg["evaluator"]["data"].items() if k != "name"})
    net, train = cfg["final_net"], dict(cfg["train"])
    rows = []
    print("| seed | model | cell | children | search valid ppl | params | test ppl |")
    print("|---|---|---|---|---|---|---|")
    for seed in args.seeds:
        for strategy in ("reinforce", "random"):
            s = _search(strategy, seed, runs, args.data_dir, args.workers)
            arch = space.parse(s["arch"])
            torch.manual_seed(arch_seed(seed, arch))
            model = space.language_model(arch, len(corpus), **net)
            params = sum(q.numel() for q in model.parameters())
            r = {"seed": seed, "model": f"{strategy} best", **s, "params": params, **_train(model, corpus, train, seed)}
            rows.append(r)
            print(f"| {seed} | {r['model']} | `{s['arch']}` | {s['children']} | {s['valid_ppl']:.1f} | {params:,} | "
                  f"{r['test_ppl']:.1f} |", flush=True)
        torch.manual_seed(seed)
        model, h = _lstm_model(space, len(corpus), rows[-1]["params"], net)
        params = sum(q.numel() for q in model.parameters())
        r = {"seed": seed, "model": "LSTM", "hidden_size": h, "params": params, **_train(model, corpus, train, seed)}
        rows.append(r)
        print(f"| {seed} | LSTM (hidden {h}) | – | – | – | {params:,} | {r['test_ppl']:.1f} |", flush=True)
    for model in ("reinforce best", "random best", "LSTM"):
        ppl = [r["test_ppl"] for r in rows if r["model"] == model]
        sd = statistics.stdev(ppl) if len(ppl) > 1 else 0.0
        print(f"{model}: test perplexity {statistics.mean(ppl):.1f} +- {sd:.1f} over {len(ppl)} seeds "
              f"({', '.join(f'{v:.1f}' for v in ppl)})")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
