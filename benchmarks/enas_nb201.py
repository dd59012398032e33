"""ENAS and random search with weight sharing (RSWS) on the NAS-Bench-201 cell, trained on real
CIFAR-10 and judged against the benchmark's table after each search (docs/results.md).

For each strategy and seed: ``torchnas search --preset PRESET --strategy S --seed K`` (the
search never reads the table), then ``torchnas bench ws-rank RUN`` (Kendall τ of the shared
weights against the table on 64 uniform cells); prints one markdown table row per run and the
means, and writes OUT/summary.json. Runs already finished in OUT are read, not redone; a run
that was stopped is resumed.

    python benchmarks/enas_nb201.py                          # enas-nb201-tiny, ENAS and RSWS, seeds 0-2
    python benchmarks/enas_nb201.py --strategies reinforce --seeds 1 --tag no-warmup \\
        --set enas.warmup_epochs=0                           # one row of the ablation

CIFAR-10 is unpacked once into OUT/../cifar from ../shared with ../shared/tools/cifar10_batches.py.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]
SHARED = HERE.parent / "shared"


def sh(cmd: list[str], log: Path) -> int:
    with open(log, "a") as f:
        return subprocess.call(cmd, stdout=f, stderr=subprocess.STDOUT)


def data_root(out: Path) -> Path:
    """A data root with the unpacked CIFAR-10 and the shared NAS-Bench-201 table."""
    root = out.parent / "data"
    cifar = root / "cifar10"
    if not (cifar / "cifar-10-batches-py" / "test_batch").exists():
        cifar.mkdir(parents=True, exist_ok=True)
        subprocess.check_call([sys.executable, str(SHARED / "tools" / "cifar10_batches.py"), str(cifar)],
                              stdout=subprocess.DEVNULL)
    table = root / "nasbench201"
    if not table.exists():
        table.symlink_to(SHARED / "data" / "nasbench201")
    return root


def run_one(torchnas: str, preset: str, strategy: str, seed: int, out: Path, data: Path, sets: list[str]) -> dict:
    run = out / f"{strategy}-{seed}"
    log = out / f"{strategy}-{seed}.log"
    if not (run / "ground_truth.json").exists():
        t0 = time.perf_counter()
        if (run / "config.yaml").exists():
            cmd = [torchnas, "search", "--resume", str(run), "--quiet"]
        else:
            cmd = [torchnas, "search", "--preset", preset, "--strategy", strategy, "--seed", str(seed),
                   "--data-dir", str(data), "--out", str(run), "--quiet", "--no-retrain"]
            cmd += [a for s in sets for a in ("--set", s)]
        if sh(cmd, log) != 0:
            raise SystemExit(f"search failed: see {log}")
        (run / "search.seconds").write_text(f"{time.perf_counter() - t0:.1f}\n")
    if not (run / "ws_rank.json").exists():
        if sh([torchnas, "bench", "ws-rank", str(run), "--data-dir", str(data)], log) != 0:
            raise SystemExit(f"ws-rank failed: see {log}")
    truth = json.loads((run / "ground_truth.json").read_text())
    rank = json.loads((run / "ws_rank.json").read_text())
    return {"strategy": strategy, "seed": seed, "arch_str": truth["arch_str"], "valid_acc": truth["valid_acc"],
            "test_acc": truth["test_acc"], "percentile": truth["valid_percentile"],
            "kendall_tau": rank["kendall_tau"], "spearman_rho": rank["spearman_rho"],
            "top10_hit_rate": rank["top10_hit_rate"], "final_entropy": _last(run / "steps.jsonl", "entropy"),
            "search_seconds": float((run / "search.seconds").read_text())}


def _last(log: Path, key: str):
    """``key`` of the last record of a JSONL log (the controller's entropy at the end), or None."""
    lines = log.read_text().splitlines() if log.exists() else []
    return json.loads(lines[-1]).get(key) if lines else None


def _num(v) -> str:
    return "-" if v is None else f"{v:.2f}"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="enas-nb201-tiny")
    p.add_argument("--strategies", nargs="+", default=["reinforce", "random"])
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--first-seed", type=int, default=0)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a preset setting")
    p.add_argument("--tag", default="default", help="name of this setting (a folder under --out)")
    p.add_argument("--out", default="runs/enas-nb201")
    args = p.parse_args(argv)
    out = Path(args.out).resolve() / args.tag
    out.mkdir(parents=True, exist_ok=True)
    data = data_root(out.parent)
    torchnas = os.environ.get("TORCHNAS") or str(HERE / ".venv" / "bin" / "torchnas")
    rows = []
    print(f"{args.preset} {' '.join('--set ' + s for s in args.set)} (tag {args.tag})")
    print("| strategy | seed | derived cell | valid % | test % | percentile | τ | ρ | top-10% hits | final entropy "
          "| search |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for strategy in args.strategies:
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            r = run_one(torchnas, args.preset, strategy, seed, out, data, args.set)
            rows.append(r)
            cell = r["arch_str"].replace("|", "\\|")      # a pipe inside a markdown table cell
            print(f"| {strategy} | {seed} | `{cell}` | {r['valid_acc']:.2f} | {r['test_acc']:.2f} | "
                  f"{r['percentile']:.1f} | {r['kendall_tau']:.3f} | {r['spearman_rho']:.3f} | "
                  f"{r['top10_hit_rate']:.2f} | {_num(r['final_entropy'])} | {r['search_seconds'] / 60:.1f} min |",
                  flush=True)
    print()
    for strategy in args.strategies:
        rs = [r for r in rows if r["strategy"] == strategy]
        m = lambda k: statistics.mean(r[k] for r in rs)
        sd = lambda k: statistics.stdev(r[k] for r in rs) if len(rs) > 1 else 0.0
        print(f"{strategy}: mean percentile {m('percentile'):.1f} ± {sd('percentile'):.1f}, valid {m('valid_acc'):.2f} %, "
              f"test {m('test_acc'):.2f} %, tau {m('kendall_tau'):.3f}, search {m('search_seconds') / 60:.1f} min "
              f"({len(rs)} seeds)")
    (out / "summary.json").write_text(json.dumps({"preset": args.preset, "set": args.set, "runs": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
