"""Is it the policy or the pick? Re-derive finished ENAS / RSWS runs on the NAS-Bench-201 cell.

ENAS's derive step (``ENASSearch.derive``, through ``score_candidates``) samples ``derive_samples`` cells from the final
policy and keeps the one with the best shared-weight accuracy on ``derive_batches`` validation
minibatches. For each finished run this script restores the run's last checkpoint (the state the
derive step started from), redraws the same candidates, scores each on up to ``--batches``
minibatches (the run's own first ``derive_batches`` of them included, so the run's pick is
reproduced and checked), and then reads the tables, after the search, for the verdict (the
200-epoch CIFAR-10 test accuracy) of:

* the pick with the first K minibatches, for each K of ``--ks`` (what more validation data at
  derive time would have given);
* the draws' mean, each cell as often as the policy drew it (the policy's own quality, with no
  pick at all), and the distinct candidates' mean; the best candidate (what a perfect judge of
  the candidates would pick), the share of draws above the largest cell, and the cell drawn most
  often (the policy's mode, as far as its draws show it; ties: the first drawn); the candidates'
  mean 12-epoch percentile second.

    python benchmarks/nb201_rederive.py runs/enas-nb201/default/{reinforce,random}-{0,1,2} \\
        --data-dir ../shared/data --ks 1 4 8 16 39

Prints one markdown row per run and writes ``--out`` (JSON). Reads the runs, writes nothing in them.
"""
from __future__ import annotations

import argparse
import collections
import json
import statistics
import sys
import time
from pathlib import Path


def rederive(run_path: Path, ks: list[int], data_dir) -> dict:
    from torchnas.runs import RunDir
    from torchnas.ws_rank import search_from_run
    run = RunDir(run_path)
    cfg, space, search = search_from_run(run)
    if search.epoch < search.epochs:
        raise SystemExit(f"{run_path}: the search stopped at epoch {search.epoch} of {search.epochs}; finish it first")
    t0 = time.perf_counter()
    drawn, archs, rewards = search.score_candidates(max(*ks, search.derive_batches))
    seconds = time.perf_counter() - t0
    counts = collections.Counter(str(a) for a in drawn)
    mode = max(range(len(archs)), key=lambda i: (counts[str(archs[i])], -i))
    truth = [space.ground_truth(a, data_dir) for a in archs]                        # after the search only
    if truth[0].get("verdict_table") is None or truth[0].get("table") is None:
        raise SystemExit(f"nb201_rederive: {truth[0].get('note', 'the space has no table')} (give --data-dir)")
    acc = [t["test_acc_200ep"] for t in truth]
    pct = [t["valid_percentile"] for t in truth]

    def pick(k: int) -> int:      # the first best, as derive's stable sort keeps it
        means = [sum(r[:k]) / k for r in rewards]
        return max(range(len(archs)), key=lambda i: (means[i], -i))
    own = pick(search.derive_batches)
    ran = (run.read_json(RunDir.BEST) or {}).get("arch")
    largest = space.baselines(data_dir)["largest_cell"]["test_acc_200ep"]
    return {"run": str(run_path), "strategy": cfg["strategy"]["name"], "seed": cfg["seed"],
            "candidates": len(archs), "derive_batches": search.derive_batches,
            "reproduces_run": ran == str(archs[own]),
            "pick_200ep": {k: acc[pick(k)] for k in ks}, "pick_rank_200ep": {k: truth[pick(k)]["rank_200ep"] for k in ks},
            "pick_percentile": {k: pct[pick(k)] for k in ks}, "pick_arch": {k: str(archs[pick(k)]) for k in ks},
            "draws": len(drawn), "draws_mean_200ep": sum(acc[i] * counts[str(a)] for i, a in enumerate(archs)) / len(drawn),
            "draws_above_largest": sum(counts[str(a)] for i, a in enumerate(archs) if acc[i] > largest) / len(drawn),
            "candidates_mean_200ep": statistics.mean(acc), "candidates_best_200ep": max(acc),
            "candidates_mean_percentile": statistics.mean(pct),
            "mode_arch": str(archs[mode]), "mode_draws": counts[str(archs[mode])], "mode_200ep": acc[mode],
            "score_seconds": round(seconds, 1)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", type=Path)
    p.add_argument("--ks", type=int, nargs="+", default=[1, 4, 16, 39],
                   help="minibatch counts to pick with (39 x 128 covers a 5,000-image validation split)")
    p.add_argument("--data-dir", type=Path, default=None, help="the data root holding nasbench201/ (the table)")
    p.add_argument("--out", type=Path, default=Path("rederive.json"))
    args = p.parse_args(argv)
    if min(args.ks) < 1:
        raise SystemExit("--ks: each count must be >= 1")
    rows = []
    print("| run | candidates | pick's 200-ep test with " + " | ".join(f"{k} batch{'es' if k > 1 else ''}" for k in args.ks)
          + " | draws' mean 200-ep | distinct candidates' mean | best candidate | draws above the largest cell "
          "| most drawn (draws) | candidates' mean 12-ep percentile | reproduces the run |")
    print("|---" * (len(args.ks) + 9) + "|")
    for path in args.runs:
        r = rederive(path, args.ks, args.data_dir)
        rows.append(r)
        print(f"| {r['strategy']}-{r['seed']} | {r['candidates']} | "
              + " | ".join(f"{r['pick_200ep'][k]:.2f}" for k in args.ks)
              + f" | {r['draws_mean_200ep']:.2f} | {r['candidates_mean_200ep']:.2f} | {r['candidates_best_200ep']:.2f} | "
              f"{r['draws_above_largest']:.2f} | {r['mode_200ep']:.2f} ({r['mode_draws']}) | "
              f"{r['candidates_mean_percentile']:.1f} | {'yes' if r['reproduces_run'] else 'NO'} |", flush=True)
    for s in sorted({r["strategy"] for r in rows}):
        rs = [r for r in rows if r["strategy"] == s]
        means = ", ".join(f"{k}: {statistics.mean(r['pick_200ep'][k] for r in rs):.2f}" for k in args.ks)
        print(f"{s}: mean pick 200-epoch test by batches ({means}); draws' mean "
              f"{statistics.mean(r['draws_mean_200ep'] for r in rs):.2f}, most drawn "
              f"{statistics.mean(r['mode_200ep'] for r in rs):.2f} ({len(rs)} runs)")
    args.out.write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
