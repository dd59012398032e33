"""Command line: ``torchnas search | train | show | export | bench | presets``."""
from __future__ import annotations

import argparse
import contextlib
import sys
import time
from pathlib import Path

from . import __version__
from .config import (ConfigError, apply_override, build, build_executor, build_space, build_strategy,
                     final_settings, load_file, load_preset, preset_names, resolve)
from .data import DataNotFoundError
from .export import ExportError
from .runs import RunDir, RunError, as_path

DEFAULT_PRESET = "nas-cnn-tiny"
BENCH_PRESET = "nb201"


def _progress(quiet: bool):
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
    if args.workers is not None:
        cfg.setdefault("executor", {})["workers"] = args.workers
        cfg["executor"].pop("threads", None)
    if args.seed is not None:
        cfg["seed"] = args.seed
    section = _data_holder(cfg)
    if args.data and section is None:
        raise ConfigError(f"--data chooses image data for a search that trains networks; preset "
                          f"{cfg.get('preset')!r} evaluates with {cfg['evaluator'].get('name')!r}")
    if section is not None and (args.data or args.data_dir):
        base = section.get("data") or {"name": "digits"}
        section["data"] = data_config(args.data or base["name"], args.data_dir, base)
    return resolve(cfg, args.strategy)


def _data_holder(cfg: dict) -> dict | None:
    """The config section whose ``data`` names the image data: ``enas`` or a trainer evaluator."""
    if "enas" in cfg:
        return cfg["enas"]
    ev = cfg.get("evaluator") or {}
    return ev if ev.get("name") == "trainer" else None


def data_config(name: str, data_dir: str | None, base: dict | None = None) -> dict:
    """``--data NAME [--data-dir PATH]``: for ``folder`` PATH is the image folder; for ``cifar10``
    it is the data root, the ``cifar-10-batches-py`` folder, or the folder holding it; for
    ``ptb`` the data root or the folder with ``ptb.train.txt``."""
    cfg = {k: v for k, v in (base or {}).items() if k in ("valid_size", "per_class", "seed", "train_tokens")}
    if name == (base or {}).get("name") and not data_dir:   # nothing new: keep where it was found
        return dict(base)
    if (name == "ptb") != ((base or {}).get("name", name) == "ptb"):
        raise ConfigError(f"--data {name!r} does not fit this preset's data {(base or {}).get('name')!r} "
                          f"(language models read ptb; image searches read digits, cifar10 or folder)")
    cfg["name"] = name
    if name == "ptb":
        if data_dir:
            p = Path(data_dir).expanduser().resolve()
            cfg["path" if (p / "ptb.train.txt").exists() else "data_dir"] = str(p)
        return cfg
    if name == "folder":
        if not data_dir:
            raise ConfigError("--data folder needs --data-dir PATH: a folder with one sub-folder per class")
        cfg["path"] = str(Path(data_dir).expanduser().resolve())
    elif name == "cifar10" and data_dir:
        p = Path(data_dir).expanduser().resolve()
        if (p / "data_batch_1").exists() or (p / "cifar-10-batches-py").exists():
            cfg["path"] = str(p)
        else:
            cfg["data_dir"] = str(p)
    elif name not in ("digits", "cifar10"):
        raise ConfigError(f"--data {name!r}: choose digits, cifar10, folder (images) or ptb (text)")
    return cfg


def cmd_search(args) -> int:
    run_search(args)
    return 0


def run_search(args) -> Path:
    """``torchnas search``; returns the run directory."""
    out = None
    if args.resume:
        run = RunDir(args.resume)
        cfg = run.config()
        if cfg.get("kind") == "train":
            raise RunError(f"{run.path} is a retraining run: continue it with torchnas train --resume {run.path}")
        if args.queries is not None and args.queries != cfg["budget"]:  # extend (or cut) the budget
            cfg["budget"] = args.queries
            run.save_config(resolve(cfg))
    else:
        cfg = _search_config(args)
        out = args.out or f"runs/{cfg.get('preset', 'search')}-{cfg['strategy']['name']}-{time.strftime('%Y%m%d-%H%M%S')}"
        run = None
    if run is None and args.data_dir:
        cfg["data_dir"] = str(Path(args.data_dir).resolve())
    if "enas" in cfg:
        return _run_enas(cfg, run, out, args)
    space, strategy, evaluator = build(cfg, args.data_dir)   # bad settings fail before a run exists
    run = run or RunDir(out).create(cfg)
    from .search import Search
    executor = build_executor(cfg)
    search = Search(space, strategy, evaluator, cfg["budget"], run_dir=run,
                    max_proposals=cfg.get("max_proposals"), executor=executor)
    search.resume()
    try:
        with _progress(args.quiet) as progress, _tensorboard(run, args.tensorboard):
            task = progress.add_task(f"{cfg['strategy']['name']} on {space.name}", total=cfg["budget"],
                                     completed=len(search.log), best=_fmt(search.best), rate="")
            start, done0 = time.perf_counter(), len(search.log)

            def update(rec):
                rate = (len(search.log) - done0) / max(time.perf_counter() - start, 1e-9)
                progress.update(task, completed=len(search.log), best=_fmt(search.best),
                                rate=f"{rate:.1f} q/s" if rate >= 1 else f"{60 * rate:.1f} q/min")
            search.on_evaluation = update
            result = search.run()
    finally:
        executor.close()
    best = result.best
    print(f"search run: {run.path}  (config.yaml, evaluations.jsonl, steps.jsonl, best.json)")
    if result.stopped_early:
        print(f"stopped after {result.proposals} proposals with {len(result.evaluations)} distinct "
              f"architectures: the strategy kept proposing ones already evaluated (max_proposals)")
    if best:
        print(f"best reward {best['reward']:.4f} at query {best['query']}: {best['arch']}")
        print("  " + ", ".join(f"{k} {_num(v)}" for k, v in best["metrics"].items()))
    if best and final_settings(cfg)[1] and cfg["evaluator"]["name"] == "trainer" and not args.no_retrain:
        _retrain_best(cfg, run, best["arch"], args.quiet, args.tensorboard)
    _figures(run)
    return run.path


def _retrain_best(cfg: dict, run: RunDir, arch: str, quiet: bool, tensorboard: bool = False) -> dict:
    from .train import train_config
    out = run.path / "retrain"
    data = _data_holder(cfg).get("data") or {"name": "digits"}
    net, train = final_settings(cfg)
    if not (out / RunDir.CONFIG).exists():
        RunDir(out).create(train_config(arch, cfg["space"], data, train, cfg["seed"], net))
    print(f"retraining the best architecture from scratch for {train['epochs']} epochs")
    return _retrain(RunDir(out), quiet, run.path / "tensorboard" if tensorboard else None, prefix="retrain/")


def _run_enas(cfg: dict, run: RunDir | None, out: str | None, args) -> Path:
    """ENAS: shared-weight search, derive, then (optionally) train the derived architecture."""
    from .enas import make_enas
    space = build_space(cfg)
    search = make_enas(space, build_strategy(cfg, space), seed=cfg["seed"], **cfg["enas"])
    search.run_dir = run = run or RunDir(out).create(cfg)
    search.resume()
    with _progress(args.quiet) as progress, _tensorboard(run, args.tensorboard):
        task = progress.add_task(f"ENAS {cfg['strategy']['name']} on {space.name}", total=search.epochs,
                                 completed=search.epoch, best="", rate="")

        def update(rec):
            m = rec[search.metric]
            acc = "-" if m is None else f"{m:.3f}" if search.metric == "valid_acc" else f"ppl {m:.1f}"
            progress.update(task, completed=rec["epoch"], best=f"valid {acc}",
                            rate=f"shared loss {rec['loss']:.3f}")
        derived = search.run(on_epoch=update)
    print(f"search run: {run.path}  (config.yaml, epochs.jsonl, steps.jsonl, derived.json, best.json)")
    for d in derived:
        ppl = f"  (valid ppl {d['valid_ppl']:.1f} on one window)" if "valid_ppl" in d else ""
        print(f"  {d['reward']:.4f}  {d['arch']}{ppl}")
    _report_ground_truth(run, space, derived[0]["arch"], cfg.get("data_dir"))
    if final_settings(cfg)[1] and not args.no_retrain:
        _retrain_best(cfg, run, derived[0]["arch"], args.quiet, args.tensorboard)
    _figures(run)
    return run.path


def _report_ground_truth(run: RunDir, space, arch: str, data_dir) -> None:
    """After the search: the benchmark table's verdict on the derived architecture, if the
    space has a table (NAS-Bench-201) and it is found."""
    from .ws_rank import GROUND_TRUTH, report_ground_truth
    truth = report_ground_truth(run, space, arch, data_dir)
    if truth is None:
        return
    if truth.get("table") is None:
        print(f"derived cell {truth['arch_str']} (no benchmark table to look it up: {truth['note']})")
        return
    print(f"derived cell {truth['arch_str']}: table valid {truth['valid_acc']:.2f} %, test {truth['test_acc']:.2f} % "
          f"(12 epochs), percentile {truth['valid_percentile']:.1f} of {truth['cells']:,} cells "
          f"(rank {truth['valid_rank']:,}); {run.path / GROUND_TRUTH}")


def _figures(run: RunDir) -> None:
    """The run's figures (what ``torchnas show RUN`` draws) in RUN/figures/."""
    from .show import write_figures
    written = write_figures(run.path)
    if written:
        names = ", ".join(sorted(Path(f).name for f in written.values()))
        print(f"figures: {run.path / 'figures'}  ({names}; summary: torchnas show {run.path})")


@contextlib.contextmanager
def _tensorboard(run: RunDir, where, prefix: str = ""):
    """``--tensorboard``: mirror every log record the run appends (and the best architecture
    at the end) to TensorBoard in ``where`` (True: RUN/tensorboard)."""
    if not where:
        yield None
        return
    from .tensorboard import TensorBoardMirror
    mirror = TensorBoardMirror(run.path / "tensorboard" if where is True else where)
    run.listeners.append(mirror if not prefix else (lambda name, rec: mirror(prefix + name, rec)))
    try:
        yield mirror
    finally:
        best = run.read_json(RunDir.BEST)
        if best:
            mirror.text(f"{prefix}best/arch", f"`{best['arch']}` (reward {best['reward']:.4f})")
        mirror.close()
        print(f"TensorBoard logs: {mirror.log_dir}")


def _num(v) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _retrain(run: RunDir, quiet: bool, tensorboard=None, prefix: str = "") -> dict:
    """Train a retraining run to its end; ``tensorboard``: a log folder (True: RUN/tensorboard)."""
    from .train import retrain
    cfg = run.config()
    with _progress(quiet) as progress:
        task = progress.add_task("retrain", total=cfg["train"]["epochs"], best="", rate="")
        start = time.perf_counter()

        def update(rec):
            valid = f"valid ppl {rec['valid_ppl']:.2f}" if "valid_ppl" in rec else f"valid {rec['valid_acc']:.4f}"
            progress.update(task, completed=rec["epoch"], best=valid, rate=f"loss {rec['loss']:.3f}")
        with _tensorboard(run, tensorboard, prefix):
            result = retrain(run, on_epoch=update)
    if "test_ppl" in result:
        print(f"perplexity: valid {result['valid_ppl']:.2f}, test {result['test_ppl']:.2f} ({result['test_tokens']:,} "
              f"test tokens; {result['cell']} cell, {result['params']:,} parameters, {result['epochs']} epochs, "
              f"{time.perf_counter() - start:.0f} s)")
        print(f"retrain run: {run.path}  (result.json, model.pt, history.jsonl)")
        return result
    print(f"test accuracy {result['test_acc']:.4f} on {result['test_images']} {result['data']} test images "
          f"({result['params']:,} parameters, {result['flops'] / 1e6:.2f} MFLOPs, {result['epochs']} epochs, "
          f"{time.perf_counter() - start:.0f} s)")
    print(f"retrain run: {run.path}  (result.json, model.pt, history.jsonl)")
    return result


def cmd_train(args) -> int:
    run_train(args)
    return 0


def run_train(args) -> Path | None:
    """``torchnas train``; returns the run directory (None for --dry-run)."""
    from .train import train_config
    if args.resume:
        _retrain(RunDir(args.resume), args.quiet, args.tensorboard)
        return Path(args.resume)
    arch, source_cfg = _arch_source(args.arch) if args.arch else (None, None)
    if args.preset or source_cfg is None:
        source_cfg = load_preset(args.preset or DEFAULT_PRESET)
    arch = arch or source_cfg.get("arch")
    if not arch:
        raise ConfigError("torchnas train needs --arch ARCH (a string, a best.json or a search run), "
                          "a preset with an 'arch', or --resume RUN")
    for assignment in args.set or []:
        apply_override(source_cfg, assignment)
    net, settings = final_settings(source_cfg)
    if not settings:
        raise ConfigError(f"preset {source_cfg.get('preset')!r} has no 'train' settings")
    settings = dict(settings)
    if args.epochs is not None:
        settings["epochs"] = args.epochs
    data = (_data_holder(source_cfg) or {}).get("data") or {"name": "digits"}
    if args.data or args.data_dir:
        data = data_config(args.data or data["name"], args.data_dir, data)
    space = build_space(source_cfg)
    arch = str(space.parse(arch))      # validates; a clear error names the bad decision
    if args.dry_run:
        _dry_run(space, arch, data, net)
        return None
    seed = args.seed if args.seed is not None else source_cfg.get("seed", 0)
    out = args.out or f"runs/train-{time.strftime('%Y%m%d-%H%M%S')}"
    run = RunDir(out).create(train_config(arch, source_cfg["space"], data, settings, seed, net))
    _retrain(run, args.quiet, args.tensorboard)
    return run.path


def _dry_run(space, arch: str, data: dict, net: dict) -> int:
    """Build the network without loading data: print its size and exit."""
    if space.name == "enas-rnn":   # Penn Treebank: 10,000 words
        model = space.language_model(space.parse(arch), 10000, **net)
        cell = sum(p.numel() for p in model.cell.parameters())
        print(f"{arch}\narc (enas_lm format): {space.to_arc(space.parse(arch))}")
        print(f"parameters: {sum(p.numel() for p in model.parameters()):,} ({cell:,} in the cell, "
              f"{model.embedding.numel():,} in the tied embedding); vocabulary 10,000; network settings {net}")
        return 0
    shapes = {"digits": (1, 8, 8, 10), "cifar10": (3, 32, 32, 10)}
    c, h, w, k = shapes.get(data.get("name"), (3, 32, 32, 10))
    model = space.child(space.parse(arch), c, k, **net)
    params = sum(p.numel() for p in model.parameters())
    aux = sum(p.numel() for n, p in model.named_parameters() if "aux" in n)
    print(f"{arch}")
    print(f"parameters: {params:,}" + (f" ({params - aux:,} without the auxiliary head)" if aux else "")
          + f"; input {c}x{h}x{w}, {k} classes; network settings {net}")
    return 0


def _arch_source(text: str):
    """An architecture string, or the best architecture of a best.json / search run (with its config)."""
    import json
    p = as_path(text)
    if p is None:
        return text, None
    if p.is_dir():
        best, cfg = p / RunDir.BEST, RunDir(p).config()
        if not best.exists():
            raise RunError(f"{p} has no {RunDir.BEST} yet: the search has evaluated nothing")
        return json.loads(best.read_text())["arch"], cfg
    if p.suffix == ".json" and p.is_file():
        cfg_path = p.parent / RunDir.CONFIG
        cfg = RunDir(p.parent).config() if cfg_path.exists() else None
        return json.loads(p.read_text())["arch"], cfg
    return text, None


def _fmt(best) -> str:
    return "-" if best is None else f"{best['reward']:.4f}"


def cmd_ws_rank(args) -> int:
    from .ws_rank import WS_RANK, ws_rank
    r = ws_rank(args.run, samples=args.samples, seed=args.seed, batches=args.batches, data_dir=args.data_dir)
    fmt = lambda v: "n/a" if v is None else f"{v:.3f}"
    print(f"{r['samples']} uniform cells scored with the shared weights on {r['images_per_cell']} validation "
          f"images each (reward_bn {r['reward_bn']})")
    print(f"Kendall tau {fmt(r['kendall_tau'])}, Spearman rho {fmt(r['spearman_rho'])}, top-10% hit rate "
          f"{r['top10_hit_rate']:.2f} (top {r['top_k']}; chance 0.10)")
    if "derived" in r:
        d = r["derived"]
        print(f"derived cell: shared-weight accuracy {d['shared_acc']:.4f}, table valid {d['table_valid_acc']:.2f} %")
    print(f"wrote {Path(args.run) / WS_RANK} and {r['figure']}")
    return 0


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


def cmd_export(args) -> int:
    from .api import export
    record = export(args.run, args.out, formats=args.format or ("python", "torchscript", "onnx"))
    for fmt, r in record["formats"].items():
        print(f"{fmt:12s} {', '.join(r['files'])}  (reloaded: max abs difference {r['max_abs_diff']:.2g})")
    print(f"wrote {Path(record['out_dir']) / 'export.json'}")
    return 0


def cmd_presets(args) -> int:
    for name in preset_names():
        print(f"{name:24s} {load_preset(name).get('description', '')}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="torchnas", description=__doc__)
    p.add_argument("--version", action="version", version=f"torchnas {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("search", help="run an architecture search (resumable)")
    s.add_argument("--preset", help=f"preset name (default {DEFAULT_PRESET}); see `torchnas presets`")
    s.add_argument("--config", help="a YAML config file instead of a preset")
    s.add_argument("--strategy", help="reinforce, random or evolution (default: the preset's)")
    s.add_argument("--queries", type=int, help="budget: distinct architectures to evaluate")
    s.add_argument("--seed", type=int)
    s.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a setting, e.g. strategies.reinforce.lr=0.01")
    s.add_argument("--data-dir", help="data root (default $TORCHNAS_DATA, else ~/.torchnas/data)")
    s.add_argument("--out", help="run directory (default runs/PRESET-STRATEGY-TIME)")
    s.add_argument("--resume", metavar="RUN", help="continue the run in RUN from its last checkpoint")
    s.add_argument("--data", help="image data for trained children: digits (default), cifar10, folder")
    s.add_argument("--workers", type=int, help="parallel child-training processes (executor.workers)")
    s.add_argument("--no-retrain", action="store_true", help="skip retraining the best child after the search")
    s.add_argument("--quiet", action="store_true", help="no progress line")
    s.add_argument("--tensorboard", action="store_true", help="mirror the logs to RUN/tensorboard as they are written")
    s.set_defaults(func=cmd_search)

    t = sub.add_parser("train", help="retrain an architecture from scratch and report test accuracy")
    t.add_argument("--arch", "--arc", dest="arch",
                   help="an architecture string (or the authors' arc), a best.json, or a search run directory")
    t.add_argument("--dry-run", action="store_true", help="build the network, print its parameter count, exit")
    t.add_argument("--preset", help="settings (space, data, train) from this preset instead of the run's")
    t.add_argument("--epochs", type=int)
    t.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a setting, e.g. train.lr=0.02")
    t.add_argument("--data", help="digits, cifar10 or folder")
    t.add_argument("--data-dir")
    t.add_argument("--seed", type=int)
    t.add_argument("--out", help="run directory (default runs/train-TIME)")
    t.add_argument("--resume", metavar="RUN", help="continue a retraining run")
    t.add_argument("--quiet", action="store_true")
    t.add_argument("--tensorboard", action="store_true", help="mirror the logs to RUN/tensorboard as they are written")
    t.set_defaults(func=cmd_train)

    bench = sub.add_parser("bench", help="seeded searches on a tabular benchmark; weight-sharing diagnostics")
    bench_sub = bench.add_subparsers(dest="benchmark", required=True)
    w = bench_sub.add_parser("ws-rank", help="how well an ENAS run's shared weights rank cells, against the "
                                             "NAS-Bench-201 table (Kendall tau, Spearman rho, top-10%% hits)")
    w.add_argument("run", metavar="RUN", help="an ENAS run on the nb201 space")
    w.add_argument("--samples", type=int, default=64, help="cells drawn uniformly at random (default 64)")
    w.add_argument("--seed", type=int, default=0, help="seed of the cells and validation batches (default 0)")
    w.add_argument("--batches", type=int, default=8,
                   help="validation minibatches (of the run's reward_batch) each cell is scored on (default 8)")
    w.add_argument("--data-dir", help="data root (default: the run's, $TORCHNAS_DATA, ~/.torchnas/data)")
    w.set_defaults(func=cmd_ws_rank)
    b = bench_sub.add_parser("nb201", help="seeded searches on the NAS-Bench-201 table, summarized")
    b.add_argument("--strategy", required=True)
    b.add_argument("--queries", type=int, default=100)
    b.add_argument("--seeds", type=int, default=10)
    b.add_argument("--first-seed", type=int, default=0)
    b.add_argument("--preset", default=BENCH_PRESET)
    b.add_argument("--set", action="append", metavar="KEY=VALUE")
    b.add_argument("--workers", type=int, default=None, help="processes (default: CPU count)")
    b.add_argument("--data-dir")
    b.add_argument("--out", help="write results as JSON here")
    b.add_argument("--quiet", action="store_true")
    b.set_defaults(func=cmd_bench)

    sub.add_parser("presets", help="list presets").set_defaults(func=cmd_presets)
    from .show import add_parser as add_show_parser
    add_show_parser(sub)

    x = sub.add_parser("export", help="the retrained network as a standalone .py + state dict, TorchScript and ONNX")
    x.add_argument("run", metavar="RUN", help="a retraining run (torchnas train), or a search run with retrain/")
    x.add_argument("--out", help="output folder (default RUN/export)")
    x.add_argument("--format", nargs="+", choices=["python", "torchscript", "onnx"], help="default: all three")
    x.set_defaults(func=cmd_export)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, DataNotFoundError, RunError, ImportError, ExportError) as e:  # config, data, architecture, run, optional package
        print(f"torchnas: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted; continue with --resume RUN", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
