"""Command line: ``torchnas search | bench | presets``."""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from . import __version__
from .config import ConfigError, apply_override, build, load_file, load_preset, preset_names, resolve
from .data import DataFormatError, DataNotFoundError
from .runs import RunDir, RunError
from .spaces import ArchitectureError

DEFAULT_PRESET = "nb201"


def _progress(total: int, quiet: bool, description: str):
    """A Rich live line: queries done, best reward, rate and ETA."""
    from rich.console import Console
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                               TimeElapsedColumn, TimeRemainingColumn)
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("best {task.fields[best]}"), TextColumn("{task.fields[rate]}"),
                    TimeElapsedColumn(), TimeRemainingColumn(),
                    console=Console(stderr=True), disable=quiet, transient=False)


def _search_config(args) -> dict:
    cfg = load_file(args.config) if args.config else load_preset(args.preset or DEFAULT_PRESET)
    for assignment in args.set or []:
        apply_override(cfg, assignment)
    if args.queries is not None:
        cfg["budget"] = args.queries
    if args.seed is not None:
        cfg["seed"] = args.seed
    return resolve(cfg, args.strategy)


def cmd_search(args) -> int:
    if args.resume:
        run = RunDir(args.resume)
        cfg = run.config()
        if args.queries is not None and args.queries != cfg["budget"]:  # extend (or cut) the budget
            cfg["budget"] = args.queries
            run.save_config(resolve(cfg))
    else:
        cfg = _search_config(args)
        out = args.out or f"runs/{cfg.get('preset', 'search')}-{cfg['strategy']['name']}-{time.strftime('%Y%m%d-%H%M%S')}"
        run = None
    space, strategy, evaluator = build(cfg, args.data_dir)
    if run is None:
        if args.data_dir:
            cfg["data_dir"] = str(Path(args.data_dir).resolve())
        run = RunDir(out).create(cfg)
    from .search import Search
    search = Search(space, strategy, evaluator, cfg["budget"], run_dir=run,
                    max_proposals=cfg.get("max_proposals"))
    search.resume()
    with _progress(cfg["budget"], args.quiet, f"search {cfg['strategy']['name']}") as progress:
        task = progress.add_task(f"{cfg['strategy']['name']} on {space.name}", total=cfg["budget"],
                                 completed=len(search.log), best=_fmt(search.best), rate="")
        start, done0 = time.perf_counter(), len(search.log)

        def update(rec):
            rate = (len(search.log) - done0) / max(time.perf_counter() - start, 1e-9)
            progress.update(task, completed=len(search.log), best=_fmt(search.best),
                            rate=f"{rate:.1f} q/s" if rate >= 1 else f"{60 * rate:.1f} q/min")
        search.on_evaluation = update
        result = search.run()
    best = result.best
    print(f"run: {run.path}")
    if result.stopped_early:
        print(f"stopped after {result.proposals} proposals with {len(result.evaluations)} distinct "
              f"architectures: the strategy kept proposing ones already evaluated (max_proposals)")
    if best:
        print(f"best reward {best['reward']:.4f} at query {best['query']}: {best['arch']}")
        for k, v in best["metrics"].items():
            print(f"  {k}: {v:.4g}")
    return 0


def _fmt(best) -> str:
    return "-" if best is None else f"{best['reward']:.4f}"


def cmd_bench(args) -> int:
    from .bench import run_nb201_bench, summarize
    overrides = list(args.set or [])
    result = run_nb201_bench(args.strategy, args.queries, args.seeds, preset=args.preset, overrides=overrides,
                             data_dir=args.data_dir, workers=args.workers, first_seed=args.first_seed,
                             quiet=args.quiet)
    summarize(result, file=sys.stdout)
    if args.out:
        import json
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
        print(f"wrote {args.out}")
    return 0


def cmd_presets(args) -> int:
    for name in preset_names():
        print(f"{name:24s} {load_preset(name).get('description', '')}")
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="torchnas", description=__doc__)
    p.add_argument("--version", action="version", version=f"torchnas {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("search", help="run an architecture search (resumable)")
    s.add_argument("--preset", help=f"preset name (default {DEFAULT_PRESET}); see `torchnas presets`")
    s.add_argument("--config", help="a YAML config file instead of a preset")
    s.add_argument("--strategy", help="reinforce, random or evolution (default: the preset's)")
    s.add_argument("--queries", type=int, help="budget: distinct architectures to evaluate")
    s.add_argument("--seed", type=int)
    s.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a setting, e.g. strategy.lr=0.01")
    s.add_argument("--data-dir", help="data root (default $TORCHNAS_DATA, else ~/.torchnas/data)")
    s.add_argument("--out", help="run directory (default runs/PRESET-STRATEGY-TIME)")
    s.add_argument("--resume", metavar="RUN", help="continue the run in RUN from its last checkpoint")
    s.add_argument("--quiet", action="store_true", help="no progress line")
    s.set_defaults(func=cmd_search)

    b = sub.add_parser("bench", help="seeded searches on a tabular benchmark, summarized")
    b.add_argument("benchmark", choices=["nb201"])
    b.add_argument("--strategy", required=True)
    b.add_argument("--queries", type=int, default=100)
    b.add_argument("--seeds", type=int, default=10)
    b.add_argument("--first-seed", type=int, default=0)
    b.add_argument("--preset", default=DEFAULT_PRESET)
    b.add_argument("--set", action="append", metavar="KEY=VALUE")
    b.add_argument("--workers", type=int, default=None, help="processes (default: CPU count)")
    b.add_argument("--data-dir")
    b.add_argument("--out", help="write results as JSON here")
    b.add_argument("--quiet", action="store_true")
    b.set_defaults(func=cmd_bench)

    sub.add_parser("presets", help="list presets").set_defaults(func=cmd_presets)

    args = p.parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, DataNotFoundError, RunError) as e:  # config, data, architecture, run errors
        print(f"torchnas: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted; continue with --resume RUN", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
