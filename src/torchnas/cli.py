"""Command line: ``torchnas search | train | show | export | bench | presets``.

Only argument parsing and printing live here: each command calls its function in
:mod:`torchnas.api` and prints through :mod:`torchnas.terminal`.
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path

from . import __version__, api, terminal
from .config import DEFAULT_PRESET, ConfigError
from .data import DataNotFoundError
from .export import ExportError
from .runs import RunError, as_path
from .show import show_arch

BENCH_PRESET = "nb201"


def _workers(text: str):
    """``--workers``: a whole number or ``auto``."""
    if text == "auto":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number or 'auto', got {text!r}") from None


def _count(text: str) -> int:
    """A whole number >= 1 (``--top``, ``--seeds``, ``--samples``, bench's ``--workers``)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {value}")
    return value


def cmd_search(args) -> int:
    if args.check:
        api.search(preset=args.preset, config=args.config, strategy=args.strategy, queries=args.queries,
                   seed=args.seed, set=args.set, data=args.data, data_dir=args.data_dir, workers=args.workers,
                   resume=args.resume, device=args.device, check=True, plugins=args.plugin)
        print("settings, data and workers check out; nothing was written")
        return 0
    api.search(preset=args.preset, config=args.config, strategy=args.strategy, queries=args.queries,
               seed=args.seed, set=args.set, data=args.data, data_dir=args.data_dir, workers=args.workers,
               out=args.out, resume=args.resume, retrain=not args.no_retrain, tensorboard=args.tensorboard,
               repair=args.repair, device=args.device, plugins=args.plugin,
               on_event=_printer(args))
    return 0


def _printer(args) -> terminal.Printer:
    """The command's printer, kept on ``args`` so that an interruption can name its run."""
    args.printer = terminal.Printer(progress=not args.quiet)
    return args.printer


def cmd_train(args) -> int:
    if args.dry_run:
        if args.resume:
            raise ConfigError("--dry-run builds the network of --arch / --preset; it does not take --resume")
        terminal.print_dry_run(api.dry_run(arch=args.arch, preset=args.preset, set=args.set, data=args.data,
                                           data_dir=args.data_dir, epochs=args.epochs, plugins=args.plugin))
        return 0
    api.train(arch=args.arch, preset=args.preset, epochs=args.epochs, set=args.set, data=args.data,
              data_dir=args.data_dir, seed=args.seed, out=args.out, resume=args.resume,
              tensorboard=args.tensorboard, on_event=_printer(args), device=args.device, plugins=args.plugin)
    return 0


def cmd_show(args) -> int:
    target = as_path(args.target)
    if target is None or not target.is_dir():
        if ":" not in args.target and not args.preset:
            raise RunError(f"{args.target} is neither a run directory nor an architecture string (SPACE:v1,v2,...)")
        show_arch(args.target, preset=args.preset, out=args.out, data_dir=args.data_dir and as_path(args.data_dir),
                  plugins=args.plugin)
        return 0
    api.show(target, figures=not args.no_figures, top=args.top)
    if args.tensorboard or args.tensorboard_dir:
        from .tensorboard import export_run_to_tensorboard
        print(f"wrote TensorBoard logs to {export_run_to_tensorboard(target, args.tensorboard_dir)}")
    return 0


def cmd_ws_rank(args) -> int:
    r = api.ws_rank(args.run, samples=args.samples, seed=args.seed, batches=args.batches,
                    policy_samples=args.policy_samples, data_dir=args.data_dir)
    terminal.print_ws_rank(r, Path(args.run))
    return 0


def cmd_scale(args) -> int:
    result = api.bench_scale(workers=args.workers, children=args.children, m=args.m, replicas=args.replicas,
                             seeds=args.seeds, first_seed=args.first_seed, modes=args.modes, finish=args.finish,
                             strategy=args.strategy, preset=args.preset,
                             sigma=args.sigma, data_dir=args.data_dir, out=args.out,
                             on_event=terminal.Printer(progress=not args.quiet))
    terminal.print_scale(result)
    if args.out:
        print(f"wrote {args.out}")
    return 0


def cmd_bench(args) -> int:
    from .bench import summarize
    result = api.bench_nb201(args.strategy, queries=args.queries, seeds=args.seeds, first_seed=args.first_seed,
                             preset=args.preset, set=args.set, data_dir=args.data_dir, workers=args.workers,
                             out=args.out, on_event=terminal.Printer(progress=not args.quiet))
    terminal.print_bench(result, summarize(result))
    if args.out:
        print(f"wrote {args.out}")
    return 0


def cmd_export(args) -> int:
    terminal.print_export(api.export(args.run, args.out, formats=args.format or ("python", "torchscript", "onnx")))
    return 0


def cmd_presets(args) -> int:
    for name, description in api.presets():
        print(f"{name:24s} {description}")
    return 0


def os_problem(e: OSError) -> str:
    """An OSError on one line: the file(s), what the system said, and what to do when it is
    one of the usual (a full disk, a name too long, no permission, a file or folder in the way).
    ``TORCHNAS_DEBUG=1`` shows the traceback instead."""
    import errno
    files = " -> ".join(str(f) for f in (e.filename, e.filename2) if f is not None)
    what = e.strerror or str(e)
    hint = {errno.ENOSPC: "free some space or write elsewhere (--out)",
            errno.ENAMETOOLONG: "use a shorter name",
            errno.EACCES: "check its permissions, or write elsewhere (--out)",
            errno.EROFS: "write elsewhere (--out)",
            errno.EISDIR: "give a file, not a folder",
            errno.ENOTDIR: "a file stands where a folder is needed: give another path"}.get(e.errno)
    return f"{files + ': ' if files else ''}{what}" + (f" ({hint})" if hint else "")


class _Terminated(KeyboardInterrupt):
    """SIGTERM: stop as Ctrl-C does (temp files removed, worker processes stopped), exit 143."""


def _terminate(signum, frame):
    raise _Terminated()


class _Parser(argparse.ArgumentParser):
    """argparse, with a usage error on one line (the usage itself is one ``--help`` away)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """Every command and option. Long: one flat block of argparse declarations per command,
    read top to bottom like the --help it prints."""
    p = _Parser(prog="torchnas", description="Neural architecture search with a reinforcement-learning "
                "controller (Zoph & Le 2017; ENAS, Pham et al. 2018). Each command's --help lists its options.")
    p.add_argument("--version", action="version", version=f"torchnas {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("search", help="run an architecture search (resumable)")
    s.add_argument("--preset", help=f"preset name (default {DEFAULT_PRESET}); see `torchnas presets`")
    s.add_argument("--config", help="a YAML config file instead of a preset")
    s.add_argument("--plugin", action="append", metavar="FILE|MODULE",
                   help="a Python file or module that registers your own space, evaluator or strategy "
                        "(@register); recorded in the run, so --resume and show find it again")
    s.add_argument("--strategy", help="reinforce, random or evolution (default: the preset's)")
    s.add_argument("--queries", type=int, help="budget: distinct architectures to evaluate")
    s.add_argument("--seed", type=int, help="seed of the strategy, the children's training and the data split "
                   "(default: the preset's)")
    s.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a setting, e.g. strategies.reinforce.lr=0.01")
    s.add_argument("--data-dir", help="data root (default $TORCHNAS_DATA, else ~/.torchnas/data)")
    s.add_argument("--out", help="run directory (default runs/PRESET-STRATEGY-TIME)")
    s.add_argument("--resume", metavar="RUN", help="continue the run in RUN from its last checkpoint, as it was set "
                   "up: options that would change it are refused; --queries N (more than done) grows a "
                   "search's budget, --device moves it to another device")
    s.add_argument("--check", action="store_true", help="check the settings, the data and the workers (or the "
                   "run to resume), then stop: nothing is trained or written")
    s.add_argument("--repair", action="store_true", help="with --resume: set a damaged evaluations.jsonl's tail "
                   "(and the checkpoint) aside into *.damaged-TIME files and replay the records before it")
    s.add_argument("--data", help="image data for trained children: digits (default), cifar10, folder")
    s.add_argument("--workers", type=_workers, metavar="N|auto",
                   help="parallel child-training processes (executor.workers); auto: from the children's size")
    s.add_argument("--device", help="where networks train: auto (CUDA if present, the default), cpu, cuda, "
                   "cuda:N or mps; recorded in the run")
    s.add_argument("--no-retrain", action="store_true", help="skip retraining the best child after the search")
    s.add_argument("--quiet", action="store_true", help="no progress line")
    s.add_argument("--tensorboard", action="store_true", help="mirror the logs to RUN/tensorboard as they are written")
    s.set_defaults(func=cmd_search)

    t = sub.add_parser("train", help="retrain an architecture from scratch and report test accuracy")
    t.add_argument("--arch", "--arc", dest="arch",
                   help="an architecture string (or the authors' arc), a best.json, a search run directory, or "
                        "'random' (one drawn from the space with --seed, else the config's seed)")
    t.add_argument("--dry-run", action="store_true", help="build the network, print its parameter count, exit")
    t.add_argument("--preset", help="settings (space, data, train) from this preset instead of the run's")
    t.add_argument("--epochs", type=int, help="training epochs (default: the run's or preset's train.epochs)")
    t.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a setting, e.g. train.lr=0.02")
    t.add_argument("--data", help="digits, cifar10 or folder (default: the run's or preset's)")
    t.add_argument("--data-dir", help="data root, or the image folder for --data folder")
    t.add_argument("--seed", type=int, help="seed of the weights and the data order (default: the run's)")
    t.add_argument("--device", help="auto (CUDA if present, the default), cpu, cuda, cuda:N or mps; recorded in the run")
    t.add_argument("--plugin", action="append", metavar="FILE|MODULE",
                   help="a Python file or module that registers your own space (a search run's own are found in "
                        "it); recorded in the retraining run")
    t.add_argument("--out", help="run directory (default runs/train-TIME)")
    t.add_argument("--resume", metavar="RUN", help="continue a retraining run")
    t.add_argument("--quiet", action="store_true", help="no progress line")
    t.add_argument("--tensorboard", action="store_true", help="mirror the logs to RUN/tensorboard as they are written")
    t.set_defaults(func=cmd_train)

    bench = sub.add_parser("bench", help="seeded searches on a tabular benchmark; weight-sharing diagnostics")
    bench_sub = bench.add_subparsers(dest="benchmark", required=True)
    w = bench_sub.add_parser("ws-rank", help="how well an ENAS run's shared weights rank cells, against the "
                                             "NAS-Bench-201 tables and against parameter count alone")
    w.add_argument("run", metavar="RUN", help="an ENAS run on the nb201 space")
    w.add_argument("--samples", type=_count, default=100,
                   help="distinct cells drawn uniformly at random (default 100)")
    w.add_argument("--policy-samples", type=_count, default=100,
                   help="draws from the run's final policy, judged by the verdict (default 100)")
    w.add_argument("--seed", type=int, default=0, help="seed of the cells and validation batches (default 0)")
    w.add_argument("--batches", type=_count, default=8,
                   help="validation minibatches (of the run's reward_batch) each cell is scored on (default 8)")
    w.add_argument("--data-dir", help="data root (default: the run's, $TORCHNAS_DATA, ~/.torchnas/data)")
    w.set_defaults(func=cmd_ws_rank)
    b = bench_sub.add_parser("nb201", help="seeded searches on the NAS-Bench-201 table, summarized")
    b.add_argument("--strategy", required=True, help="reinforce, random or evolution")
    b.add_argument("--queries", type=int, default=100, help="budget of each search (default 100)")
    b.add_argument("--seeds", type=_count, default=10, help="independent searches (default 10)")
    b.add_argument("--first-seed", type=int, default=0, help="seed of the first search (default 0)")
    b.add_argument("--preset", default=BENCH_PRESET, help=f"settings of each search (default {BENCH_PRESET})")
    b.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a setting, as for search")
    b.add_argument("--workers", type=_count, default=None, help="processes (default: CPU count)")
    b.add_argument("--data-dir", help="data root holding nasbench201/ (default $TORCHNAS_DATA)")
    b.add_argument("--out", help="write results as JSON here")
    b.add_argument("--quiet", action="store_true", help="no progress line")
    b.set_defaults(func=cmd_bench)

    c = bench_sub.add_parser("scale", help="synchronous against asynchronous search on simulated clusters "
                                           "(the real search loop on NAS-Bench-201; Zoph & Le's 800 workers)")
    c.add_argument("--workers", type=_count, nargs="+", default=[8, 64, 800], help="cluster sizes (default 8 64 800)")
    c.add_argument("--children", type=_count, default=12_800, help="children per search (default 12,800, Zoph & Le's)")
    c.add_argument("--m", type=_count, nargs="+", default=[8],
                   help="children per asynchronous replica, one search each (default 8, Zoph & Le's)")
    c.add_argument("--replicas", type=_count, nargs="+", default=None,
                   help="asynchronous replicas K, one search each (default: workers / m, Zoph & Le's 100 at 800)")
    c.add_argument("--modes", nargs="+", default=["sync", "async"], help="sync and/or async (default both)")
    c.add_argument("--finish", nargs="+", default=["drain", "cancel"],
                   help="how an asynchronous search ends: drain (wait for every child asked) and/or cancel "
                        "(stop those in flight once the budget is logged); default both")
    c.add_argument("--seeds", type=_count, default=1, help="searches per mode and size (default 1)")
    c.add_argument("--first-seed", type=int, default=0, help="seed of the first (default 0)")
    c.add_argument("--strategy", default="reinforce", help="reinforce, random or evolution (default reinforce)")
    c.add_argument("--preset", default="nb201",
                   help="nb201 (the table's rewards, cells judged by the 200-epoch table; default) or nas-cnn, "
                        "nas-cnn-pool, nas-cnn-strides (Zoph & Le's space, FLOPs counted, a scripted reward)")
    c.add_argument("--sigma", type=float, default=0.5, help="shape of the log-normal noise on child times (default 0.5)")
    c.add_argument("--data-dir", help="data root holding nasbench201/ (default $TORCHNAS_DATA)")
    c.add_argument("--out", help="also write the rows as JSON lines here")
    c.add_argument("--quiet", action="store_true", help="no progress line")
    c.set_defaults(func=cmd_scale)

    sub.add_parser("presets", help="list presets").set_defaults(func=cmd_presets)

    v = sub.add_parser("show", help="summarize a run and plot it, or draw an architecture string")
    v.add_argument("target", help="a run directory, or an architecture string such as nb201:...")
    v.add_argument("--top", type=_count, default=5, help="best architectures to list (default 5)")
    v.add_argument("--no-figures", action="store_true", help="print the summary only")
    v.add_argument("--tensorboard", action="store_true", help="also replay the run's logs into RUN/tensorboard")
    v.add_argument("--tensorboard-dir", metavar="DIR", help="... into DIR instead (implies --tensorboard)")
    v.add_argument("--preset", help="for an architecture string: the space settings of this preset")
    v.add_argument("--plugin", action="append", metavar="FILE|MODULE",
                   help="for an architecture string of your own space: the file or module that registers it")
    v.add_argument("--out", help="for an architecture string: output path without suffix (default ./arch)")
    v.add_argument("--data-dir", help="for an architecture string: the data root of the space's benchmark tables "
                                      "(default $TORCHNAS_DATA, ~/.torchnas/data)")
    v.set_defaults(func=cmd_show)

    x = sub.add_parser("export", help="the retrained network as a standalone .py + state dict, TorchScript and ONNX")
    x.add_argument("run", metavar="RUN", help="a retraining run (torchnas train), or a search run with retrain/")
    x.add_argument("--out", help="output folder (default RUN/export)")
    x.add_argument("--format", nargs="+", choices=["python", "torchscript", "onnx"], help="default: all three")
    x.set_defaults(func=cmd_export)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if argv is None:                  # the process's own command line: SIGTERM stops it as Ctrl-C does
        signal.signal(signal.SIGTERM, _terminate)
    try:
        code = args.func(args)
        sys.stdout.flush()            # a closed pipe shows here, inside the handler below
        return code
    except (ValueError, DataNotFoundError, RunError, ImportError, ExportError) as e:  # config, data, architecture, run, optional package
        if os.environ.get("TORCHNAS_DEBUG"):
            raise
        hint = ""
        if getattr(e, "unknown_kind", None) in ("space", "evaluator", "strategy") and \
                hasattr(args, "plugin") and not getattr(args, "resume", None):
            hint = " (one of your own: --plugin FILE)"
        print(f"torchnas: error: {e}{hint}", file=sys.stderr)
        return 2
    except BrokenPipeError:           # `torchnas presets | head`: the reader left; exit quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as e:              # the file system said no: name the file and what is wrong
        if os.environ.get("TORCHNAS_DEBUG"):
            raise
        print(f"torchnas: error: {os_problem(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:
        if argv is None:              # the process's own command line: a second Ctrl-C cannot cut its exit short
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        path = getattr(getattr(args, "printer", None), "run_path", None)
        then = f"; continue with torchnas {args.command} --resume {path}" if path else ""
        print(f"\n{'terminated' if isinstance(e, _Terminated) else 'interrupted'}{then}", file=sys.stderr)
        return 143 if isinstance(e, _Terminated) else 130


if __name__ == "__main__":
    sys.exit(main())
