"""Worker utilisation against cluster size, synchronous and asynchronous (issue 29, item 5): the
``torchnas bench scale`` searches at each W, drawn as one figure.

    python benchmarks/scale_figure.py [--workers 8 16 32 64 128 256 512 800] [--children 3200]
        [--m 8] [--seeds 1] [--data-dir DIR] [--out docs/images/scale_utilisation.png] [--rows FILE]

Each point is one search (the mean over ``--seeds``): utilisation over the whole search (solid:
the children whose results were used) and until its last child started (dashed). The
asynchronous search ends two ways (``search.finish``): ``drain`` waits for its last children,
``cancel`` stops them once the budget is logged. The rows are also written as JSON lines
(``--rows``).
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workers", type=int, nargs="+", default=[8, 16, 32, 64, 128, 256, 512, 800])
    p.add_argument("--children", type=int, default=3200)
    p.add_argument("--m", type=int, default=8)
    p.add_argument("--seeds", type=int, default=1)
    p.add_argument("--data-dir", default=str(HERE.parent / "shared" / "data"))
    p.add_argument("--out", default=str(HERE / "docs" / "images" / "scale_utilisation.png"))
    p.add_argument("--rows", default=str(HERE / "runs" / "scale_figure.jsonl"))
    args = p.parse_args(argv)
    sys.path.insert(0, str(HERE / "src"))
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from torchnas import api
    rows = api.bench_scale(workers=args.workers, children=args.children, m=[args.m], seeds=args.seeds,
                           data_dir=args.data_dir)["rows"]
    out = Path(args.out)
    Path(args.rows).parent.mkdir(parents=True, exist_ok=True)
    Path(args.rows).write_text("".join(json.dumps(r) + "\n" for r in rows))
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for mode, finish, colour in (("sync", "drain", "tab:blue"), ("async", "drain", "tab:orange"),
                                 ("async", "cancel", "tab:green")):
        mine = [r for r in rows if (r["mode"], r["finish"]) == (mode, finish)]
        ws = sorted({r["workers"] for r in mine})
        name = mode if mode == "sync" else f"{mode}, {finish}"
        for key, style, what in (("utilisation", "-", "whole search"), ("utilisation_steady", "--", "until the last start")):
            if key == "utilisation_steady" and finish == "cancel":
                continue                            # busy until its last start as the drained one is (the rows have both)
            ys = [100 * statistics.mean(r[key] for r in mine if r["workers"] == w) for w in ws]
            ax.plot(ws, ys, style, marker="o", color=colour, label=f"{name}, {what}")
            if key == "utilisation":
                print(name, " ".join(f"W={w}: {y:.1f}%" for w, y in zip(ws, ys)))
    ax.set_xscale("log")
    ax.set_xticks(args.workers, [str(w) for w in args.workers])
    ax.set_ylim(0, 100)
    ax.set_xlabel("workers W")
    ax.set_ylabel("workers busy (%)")
    ax.set_title(f"NAS-Bench-201, {args.children:,} children, REINFORCE (async: W/{args.m} replicas of {args.m})",
                 fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    print(f"wrote {out} and {args.rows}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
