"""The Python API: every command as a function, with keyword arguments. The command line
(cli.py) is a thin shell over these.

    from torchnas import api

    run = api.search(preset="nas-cnn-tiny", queries=40, out="runs/demo")   # search, retrain the best
    print(run.best["arch"], run.result["test_acc"])
    api.show(run)                            # summary in the terminal, figures in runs/demo/figures/
    api.export(run)                          # model.py + state dict, TorchScript, ONNX, each checked
    api.draw("enas-rnn:0 2 1 0 2 1 2 2 4 0 5 0 3 2 6 2", "cell")   # a diagram of any architecture

Options are the command's (``--data-dir`` is ``data_dir``; ``--set k=v`` is ``set={"k": v}``);
errors are the ones the command prints. Runs are the same directories the CLI writes, so either
can resume the other's.

Long work reports through ``on_event(name, data)`` (see :mod:`torchnas.terminal` for the events
and how the command line prints them); ``quiet=False`` prints them as the command line does.
"""
from __future__ import annotations

import contextlib
import gc
import json
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .config import (DEFAULT_PRESET, ConfigError, RunConfig, apply_override, build, build_executor, build_space,
                     TOP_KEYS, check_executor, check_top_level, data_config, data_section, final_settings, load_preset,
                     require_named,
                     preset_names, retraining_data, search_config, set_device)
from .runs import RunDir, RunError, as_path, run_kind

Events = Callable[[str, dict], None]


@dataclass
class Run:
    """A run directory (search, ENAS search or retraining) and what it holds so far: a thin
    view over :class:`torchnas.runs.RunDir`."""

    path: Path

    @property
    def dir(self) -> RunDir:
        return RunDir(self.path)

    @property
    def kind(self) -> str:
        """``search``, ``enas`` or ``train``."""
        return self.dir.kind

    @property
    def config(self) -> dict:
        return self.dir.config()

    @property
    def best(self) -> dict | None:
        """``best.json``: the best (or derived) architecture and its reward."""
        return self.dir.read_json(RunDir.BEST)

    @property
    def result(self) -> dict | None:
        """The retraining result: ``result.json`` here, or of the search's ``retrain/`` run."""
        sub = self.dir.retrain
        return self.dir.read_json(RunDir.RESULT) or (sub.read_json(RunDir.RESULT) if sub else None)

    @property
    def retrain(self) -> "Run | None":
        sub = self.dir.retrain
        return Run(sub.path) if sub else None

    def log(self, name: str) -> list[dict]:
        """Records of ``evaluations``, ``steps``, ``epochs`` or ``history`` (.jsonl); complete
        lines only, so the run may still be writing."""
        return self.dir.records(name if name.endswith(".jsonl") else f"{name}.jsonl")

    def __fspath__(self) -> str:
        return str(self.path)


def _events(on_event: Events | None, quiet: bool) -> Events:
    if on_event is not None:
        return on_event
    if not quiet:
        from .terminal import Printer
        return Printer()
    return lambda name, data: None


def _overrides(value) -> list[str]:
    """``set``: a dict ``{key: value}``, a list of ``key=value`` strings, or one such string."""
    if not value:
        return []
    if isinstance(value, dict):
        return [f"{k}={json.dumps(v)}" for k, v in value.items()]
    return [value] if isinstance(value, str) else list(value)


def _path(p) -> str | None:
    return None if p is None else str(Path(p))


# -- torchnas search --------------------------------------------------------------------------
def search(*, preset: str | None = None, config=None, strategy: str | None = None, queries: int | None = None,
           seed: int | None = None, set=None, data: str | None = None, data_dir=None,
           workers: int | str | None = None,
           out=None, resume=None, retrain: bool = True, tensorboard: bool = False, quiet: bool = True,
           on_event: Events | None = None, repair: bool = False, device: str | None = None,
           check: bool = False, plugins=None) -> Run | None:
    """``torchnas search``: a search (or an ENAS search) in a new run directory ``out``, or the
    run ``resume`` continued from its checkpoint (``queries`` then grows its budget; ``repair``
    sets a damaged log's tail aside and replays the records before it); with ``retrain`` the
    best architecture is then trained from scratch in ``RUN/retrain``. ``check``: build and check
    everything (settings, data, executor; a resumed run's config) and stop, writing nothing.
    ``plugins``: Python files or modules that register the user's own spaces, evaluators, ...
    (recorded in the run: a resume and ``torchnas show`` import them again)."""
    emit = _events(on_event, quiet)
    data_dir = _path(data_dir)
    if repair and not resume:
        raise ConfigError("--repair goes with --resume RUN: it mends a run's damaged log")
    if resume:
        _refuse_on_resume(preset=preset, config=config, strategy=strategy, seed=seed, set=set, data=data,
                          workers=workers, out=out, plugin=plugins or None)
        run = RunDir(resume)
        rc = _resumable_config(run)               # not a run, or a broken one: say so before locking
        if check:
            run.load_checkpoint(rc.kind, peek=True)
            _check_only(rc, data_dir)
            return None
        with run.owned():                         # one writer: checked before anything is read or cut
            rc = _resumable_config(run)           # as it is now that this process holds the run
            if not repair:                        # another job's checkpoint: refused (--repair sets it aside)
                run.load_checkpoint(rc.kind, peek=True)
            if device is not None:                # continue it on another device
                rc = _move(run, rc.raw, device)
            if repair:
                if rc.kind != "search":
                    raise RunError(f"--repair replays a search's evaluations; {run.path} is an ENAS search, which "
                                   f"resumes from its checkpoint: restore its logs from a copy")
                for moved in run.repair(RunDir.EVALS, (RunDir.STEPS,)):
                    emit("set_aside", {"path": moved})
            extend = queries is not None and queries != rc.budget
            if extend:
                _check_new_budget(run, rc.kind, queries)
                rc = rc.with_budget(queries)      # recorded once the run has resumed from its checkpoint
            return _search(rc, run, None, data_dir, retrain and rc.retrain, tensorboard, emit, new_budget=extend)
    rc = search_config(preset=preset, config=config, set=_overrides(set), queries=queries, workers=workers,
                       plugins=plugins, seed=seed, data=data, data_dir=data_dir, strategy=strategy, device=device,
                       retrain=retrain)     # resolved once: what every step below reads
    out = _path(out) or f"runs/{rc.preset or 'search'}-{rc.strategy['name']}-{time.strftime('%Y%m%d-%H%M%S')}"
    if check:
        _check_only(rc, data_dir)
        return None
    return _search(rc, None, out, data_dir, retrain, tensorboard, emit)


def _check_only(rc: RunConfig, data_dir) -> None:
    """``--check``: everything a search builds and checks before it writes, then nothing."""
    if rc.kind == "enas":
        _prepare_enas(rc)
    else:
        _prepare_search(rc, data_dir)[3].close()


def _move(run: RunDir, cfg: dict, device: str) -> RunConfig:
    """``--resume --device``: the run continues on ``device`` (checked by ``set_device``; recorded)."""
    cfg = json.loads(json.dumps(cfg))            # the recorded config is not changed in place
    set_device(cfg, device)
    run.save_config(cfg)
    return RunConfig.of(cfg)


def _prepare_search(rc: RunConfig, data_dir):
    """(space, strategy, evaluator, executor, the config with its workers sized), built and
    checked (settings, data, retraining settings, workers) before a run directory exists."""
    space, strategy_, evaluator = build(rc, data_dir)
    check_executor(rc)
    _search_settings(rc)
    evaluator.check()
    _check_final(rc, space)
    if rc.executor.get("workers") == "auto":
        rc = rc.with_executor(_size_workers(rc.executor, space, strategy_, evaluator))
    return space, strategy_, evaluator, build_executor(rc), rc      # last: a Ray cluster that is not there


def _search_settings(rc: RunConfig) -> dict:
    """The ``search:`` section checked (mode, replicas, finish)."""
    from .search import loop_settings
    from .settings import checked
    return loop_settings(**checked("search", loop_settings, rc.search))


def _replicas(rc: RunConfig, strategy_) -> int:
    from .search import replicas_for
    workers = rc.executor.get("workers", 1)
    return replicas_for(_search_settings(rc), workers if isinstance(workers, int) else 1,
                        getattr(strategy_, "batch_size", 1))


def _size_workers(executor: dict, space, strategy_, evaluator) -> dict:
    """``executor.workers: auto`` made numbers (recorded in the run, so a resumed run keeps
    them): a process per core for small children, else one process with every core's threads
    (:func:`~torchnas.evaluators.executors.auto_workers`), sized on 4 uniformly drawn children;
    with Ray, one single-thread task per child of a strategy batch."""
    import os
    import random
    from .evaluators.executors import auto_workers
    batch = getattr(strategy_, "batch_size", 1)
    if executor.get("backend", "local") == "ray":        # the cluster places them: a task per child
        return {**executor, "workers": max(1, batch), "threads": 1}
    rng = random.Random(0)
    flops = evaluator.step_flops([space.random(rng) for _ in range(4)]) if _main_can_be_reimported() else None
    workers, threads = auto_workers(os.cpu_count() or 1, batch, flops)
    return {**executor, "workers": workers, "threads": threads}


def _main_can_be_reimported() -> bool:
    """Whether worker processes may start: a spawned worker imports the ``__main__`` script
    again, which is safe only when the script's own work sits under ``if __name__ ==
    "__main__":`` (the ``torchnas`` command's does; an interactive session has no script)."""
    import re
    import sys
    path = getattr(sys.modules.get("__main__"), "__file__", None)
    if path is None:
        return True
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return False
    return re.search(r"__name__\s*==\s*['\"]__main__['\"]", text) is not None


def _prepare_enas(rc: RunConfig):
    """(space, ENAS search), built (data loaded, shared weights made) and checked."""
    from .enas import build_enas
    space, search_ = build_enas(rc)
    _check_final(rc, space)
    return space, search_


def _about(run: RunDir, resumed: bool, cfg: dict, budget) -> dict:
    """The ``run`` event: the run's path and what it runs (its header line)."""
    from .training.device import default_device
    section = data_section(cfg) if "kind" not in cfg else cfg.get("train")
    device = None if section is None else section.get("device", "auto")
    try:
        device = device if device is None else str(default_device(device))
    except ValueError:
        pass                                     # shown as recorded; the training says what is wrong
    ex = cfg.get("executor") or {}
    workers = None
    if "evaluator" in cfg and ex.get("backend", "local") == "local":
        w, t = ex.get("workers", 1), ex.get("threads")
        workers = f"{w} x {t} thread{'s' * (t != 1)}" if t else str(w)
    return {"path": run.path, "resumed": resumed, "preset": cfg.get("preset"),
            "strategy": (cfg.get("strategy") or {}).get("name"), "budget": budget, "device": device,
            "workers": workers}


def _resumable_config(run: RunDir) -> RunConfig:
    """The config of a search run to resume, checked like a new one (it may have been edited)."""
    cfg = run.config()
    if run_kind(cfg) == "train":
        raise RunError(f"{run.path} is a retraining run: continue it with torchnas train --resume {run.path}")
    try:
        return RunConfig.of(cfg)
    except ConfigError as e:
        raise RunError(f"{run.path / RunDir.CONFIG}: {e}") from None


def _refuse_on_resume(**options) -> None:
    """``--resume`` continues a run as it was set up: an option that would change it is an error
    (``None`` and an empty ``--set`` mean not given)."""
    changed = [f"--{k.replace('_', '-')}" for k, v in options.items() if v is not None and v != []]
    if changed:
        raise ConfigError(f"--resume continues a run as it was set up; {', '.join(changed)} would change it "
                          f"(only a search's --queries may grow its budget, and --device move it): start a new "
                          f"run instead")


def _check_new_budget(run: RunDir, kind: str, queries: int) -> None:
    """``--resume --queries N``: only a search has a budget, and it cannot fall below what is done."""
    if kind == "enas":
        raise ConfigError(f"{run.path} is an ENAS search: it runs for enas.epochs, not a budget of queries; "
                          f"drop --queries to continue it")
    done = len(run.check_log(RunDir.EVALS))
    if queries <= done:
        raise ConfigError(f"--queries {queries}: {run.path} has already evaluated {done} architectures; "
                          f"give more than {done} to extend it, or drop --queries to continue it")


@contextlib.contextmanager
def _new_or_held(run: RunDir | None, out, rc: RunConfig):
    """The run to write: ``run`` (resumed, its lock already held), or a new one in ``out``,
    created and held here."""
    if run is not None:
        yield run
        return
    run = RunDir(out).create(rc.raw)
    with run.new(), run.owned():
        yield run


def _search(rc: RunConfig, run: RunDir | None, out, data_dir, retrain: bool, tensorboard: bool,
            emit: Events, new_budget: bool = False) -> Run:
    from .training.progress import listening
    with listening(lambda d: emit("step", d)):
        return _search_steps(rc, run, out, data_dir, retrain, tensorboard, emit, new_budget)


def _search_steps(rc: RunConfig, run: RunDir | None, out, data_dir, retrain: bool, tensorboard: bool,
                  emit: Events, new_budget: bool = False) -> Run:
    """A search, new or resumed; ``new_budget``: a resumed run's grown budget (``--queries``) is
    written to its config.yaml only once the settings, the data and the checkpoint proved good."""
    if rc.kind == "enas":
        return _enas(rc, run, out, retrain, tensorboard, emit)
    recorded = rc.raw                                    # as given ("auto" workers stay "auto")
    space, strategy_, evaluator, executor, rc = _prepare_search(rc, data_dir)
    resumed = run is not None
    try:
        with _new_or_held(run, out, rc) as run:
            emit("run", _about(run, resumed, rc.raw, rc.budget))
            from .search import Search
            search_ = Search(space, strategy_, evaluator, rc.budget, run_dir=run,
                             max_proposals=rc.max_proposals, executor=executor, replicas=_replicas(rc, strategy_),
                             finish=_search_settings(rc)["finish"])
            search_.resume()
            if new_budget:
                run.save_config(recorded)
            with _tensorboard(run, tensorboard, emit):
                emit("start", {"task": "search", "label": f"{rc.strategy['name']} on {space.name}",
                               "total": rc.budget, "completed": len(search_.log), "best": search_.best,
                               "replay": len(search_._replay)})
                search_.on_evaluation = lambda rec: emit("progress", {"completed": len(search_.log),
                                                                      "best": search_.best})
                try:
                    result = search_.run()
                finally:
                    emit("end", {"task": "search"})
            executor.close()
            emit("search_done", {"path": run.path, "best": result.best, "stopped_early": result.stopped_early,
                                 "proposals": result.proposals, "distinct": len(result.evaluations),
                                 "cancelled": result.cancelled})
            best = result.best
            if best and rc.retrains and retrain:
                _retrain_best(rc, run, best["arch"], tensorboard, emit)
            _figures(run, emit)
    finally:
        executor.close()                                 # idempotent; workers never outlive the search
    return Run(run.path)


def _enas(rc: RunConfig, run: RunDir | None, out: str | None, retrain: bool, tensorboard: bool, emit: Events) -> Run:
    """ENAS: shared-weight search, derive, then (optionally) train the derived architecture."""
    from .ws_rank import report_ground_truth
    space, search_ = _prepare_enas(rc)
    resumed = run is not None
    held = [search_]
    del search_
    with _new_or_held(run, out, rc) as run:
        derived = _run_enas(held.pop(), rc, run, resumed, space, tensorboard, emit)
        gc.collect()                   # the shared weights are freed before the retraining and the figures
        emit("enas_done", {"path": run.path, "derived": derived})
        truth = report_ground_truth(run, space, derived[0]["arch"], rc.data_dir)
        if truth is not None:
            emit("ground_truth", {"path": run.path, "truth": truth})
        if rc.retrains and retrain:
            _retrain_best(rc, run, derived[0]["arch"], tensorboard, emit)
        _figures(run, emit)
    return Run(run.path)


def _run_enas(search_, rc: RunConfig, run: RunDir, resumed: bool, space, tensorboard: bool, emit: Events) -> list:
    """The search's epochs and derive step; returns the derived architectures. The caller keeps
    no reference to ``search_``, so its shared weights go when this returns (at the recurrent
    peer's size they are 2.1 GB: issue 27 item 8)."""
    emit("run", _about(run, resumed, rc.raw, f"{search_.epochs} epochs"))
    search_.run_dir = run
    search_.resume()
    metric = search_.metric
    with _tensorboard(run, tensorboard, emit):
        emit("start", {"task": "enas", "label": f"ENAS {rc.strategy['name']} on {space.name}",
                       "total": search_.epochs, "completed": search_.epoch, "metric": metric})
        try:
            return search_.run(on_epoch=lambda rec: emit("progress", {
                "completed": rec["epoch"], "valid": rec[metric], "metric": metric, "loss": rec["loss"]}))
        finally:
            emit("end", {"task": "enas"})


def _check_final(rc: RunConfig, space) -> None:
    """The retraining settings (``train``, ``final_net``), checked before the search starts, so
    that a typo in them cannot surface after hours of searching."""
    from .tasks import task_of
    if rc.final_train:
        task = task_of(space)
        task.check_train_settings(rc.final_train)
        task.check_net_settings(space, rc.final_net)


def _retrain_best(rc: RunConfig, run: RunDir, arch: str, tensorboard: bool, emit: Events) -> dict:
    from .train import train_config
    out = run.path / RunDir.RETRAIN
    data = retraining_data(rc.raw)
    net, train_ = rc.final_net, rc.final_train
    if (out / RunDir.CONFIG).exists() and RunDir(out).config().get("arch") != arch:
        # a search extended past its retraining found a new best: the old retraining is kept aside
        kept = _free_name(run.path / f"{RunDir.RETRAIN}.replaced")
        old = RunDir(out).config().get("arch")
        out.rename(kept)
        emit("retrain_replaced", {"old": old, "new": arch, "kept": kept})
    sub, fresh = RunDir(out), not (out / RunDir.CONFIG).exists()
    if fresh:
        plugins = {"plugins": rc.plugins} if rc.plugins else {}   # its space may be the user's own
        sub.create({**train_config(arch, rc.space, data, train_, rc.seed, net), **plugins})
    emit("retrain_start", {"epochs": train_["epochs"]})
    with sub.new() if fresh else contextlib.nullcontext():
        return _retrain(sub, run.path / RunDir.TENSORBOARD if tensorboard else None, emit,
                        prefix=RunDir.RETRAIN + "/")


def _free_name(path: Path) -> Path:
    """``path``, or ``path-2``, ``path-3``, ...: the first that does not exist."""
    k, free = 1, path
    while free.exists():
        k += 1
        free = path.with_name(f"{path.name}-{k}")
    return free


def _retrain(run: RunDir, tensorboard, emit: Events, prefix: str = "") -> dict:
    """Train a retraining run to its end; ``tensorboard``: a log folder (True: RUN/tensorboard)."""
    from .train import retrain
    cfg = run.config()
    start = time.perf_counter()
    with run.owned(), _tensorboard(run, tensorboard, emit, prefix):
        emit("start", {"task": "retrain", "label": "retrain", "total": cfg["train"]["epochs"], "completed": 0})
        try:
            result = retrain(run, on_epoch=lambda rec: emit("progress", {
                "completed": rec["epoch"], "loss": rec["loss"],
                **{k: rec[k] for k in ("valid_acc", "valid_ppl") if k in rec}}))
        finally:
            emit("end", {"task": "retrain"})
    emit("retrain_done", {"path": run.path, "result": result, "seconds": time.perf_counter() - start})
    return result


def _figures(run: RunDir, emit: Events) -> None:
    """The run's figures (what ``torchnas show RUN`` draws) in RUN/figures/."""
    from .show import write_figures
    written = write_figures(run.path)
    if written:
        emit("figures", {"path": run.path, "dir": run.path / RunDir.FIGURES,
                         "names": sorted(Path(f).name for f in written.values())})


@contextlib.contextmanager
def _tensorboard(run: RunDir, where, emit: Events, prefix: str = ""):
    """``tensorboard``: mirror every log record the run appends (and the best architecture at
    the end) to TensorBoard in ``where`` (True: RUN/tensorboard)."""
    if not where:
        yield
        return
    from .tensorboard import TensorBoardMirror
    mirror = TensorBoardMirror(run.path / RunDir.TENSORBOARD if where is True else where)
    listener = mirror if not prefix else (lambda name, rec: mirror(prefix + name, rec))
    run.listeners.append(listener)
    try:
        yield
    finally:
        run.listeners.remove(listener)
        best = run.read_json(RunDir.BEST)
        if best:
            mirror.text(f"{prefix}best/arch", f"`{best['arch']}` (reward {best['reward']:.4f})")
        mirror.close()
        emit("tensorboard", {"log_dir": mirror.log_dir})


# -- torchnas train ---------------------------------------------------------------------------
RANDOM_ARCH = "random"     # torchnas train --arch random: an architecture drawn from the space


@dataclass(frozen=True)
class TrainConfig:
    """A retraining's configuration, resolved and checked once at the top of ``torchnas train``
    (issue 27 item 9), before anything is written: the space, the architecture (a string the
    space parsed), the data, the typed ``train`` and ``final_net`` settings, the seed, and the
    config they came from (a preset or a search run's). ``train`` and ``dry_run`` read these."""
    space: object
    arch: str
    data: dict
    train: dict
    net: dict
    seed: int
    source: dict


def _train_settings(arch, preset, set, epochs, data, data_dir, seed=None, device=None, plugins=None) -> TrainConfig:
    """The :class:`TrainConfig` of ``torchnas train``: ``arch`` a string, a best.json, a search
    run, a :class:`Run` or ``random`` (drawn with ``seed``, else the config's)."""
    from .registry import load_plugins, plugin_paths
    plugins = plugin_paths(plugins)
    load_plugins(plugins)                # before the architecture's space is looked up
    arch = arch.path if isinstance(arch, Run) else arch
    given = arch
    drawn = arch == RANDOM_ARCH
    arch, source_cfg = _arch_source(str(arch)) if arch and not drawn else (None, None)
    if preset or source_cfg is None:
        source_cfg = load_preset(preset or DEFAULT_PRESET)
    arch = arch or source_cfg.get("arch")
    if not arch and not drawn:
        raise ConfigError("torchnas train needs --arch ARCH (a string, a best.json or a search run), "
                          "a preset with an 'arch', or --resume RUN")
    if plugins:
        source_cfg["plugins"] = list(dict.fromkeys(list(source_cfg.get("plugins") or []) + plugins))
    for assignment in _overrides(set):
        apply_override(source_cfg, assignment)
    if set:                            # the settings' shape, as a search checks it (a run's own was checked)
        check_top_level({k: v for k, v in source_cfg.items() if k in TOP_KEYS})
        require_named(source_cfg, ("space",))
    net, settings = final_settings(source_cfg)
    if not settings:
        where = f"preset {source_cfg['preset']!r}" if source_cfg.get("preset") else f"the config of {given}"
        raise ConfigError(f"{where} has no 'train' settings, so there is nothing to retrain it with: give --preset "
                          f"with train settings for its space, or add a 'train:' section to the run's config")
    settings = dict(settings)
    if epochs is not None:
        settings["epochs"] = epochs
    if device is not None:
        from .training.device import default_device
        default_device(device)                   # by the option's name, before train.device is checked
        settings["device"] = device
    data_ = retraining_data(source_cfg)
    if data or data_dir:
        data_ = data_config(data or data_["name"], _path(data_dir), data_)
    space = build_space(source_cfg)
    seed = seed if seed is not None else source_cfg.get("seed", 0)
    if drawn:                          # a random architecture of the space, from the config's seed
        arch = str(space.random(random.Random(seed)))
    _check_arch_space(arch, source_cfg)
    arch = str(space.parse(arch))      # validates; a clear error names the bad decision
    from .tasks import task_of
    settings = task_of(space).check_train_settings(settings)     # typed and range-checked before anything runs
    return TrainConfig(space, arch, data_, settings, net, seed, source_cfg)


def _check_arch_space(arch: str, cfg: dict) -> None:
    """``--arch SPACE:...`` must be of the space whose settings train it; otherwise name the
    presets that have settings for SPACE."""
    name = arch.partition(":")[0].strip() if ":" in arch else None
    have = (cfg.get("space") or {}).get("name")
    if name is None or name == have:
        return
    from .registry import lookup
    lookup("space", name, error=ConfigError)          # an unknown space names the known ones
    fits = [p for p in preset_names() if (load_preset(p).get("space") or {}).get("name") == name
            and final_settings(load_preset(p))[1]]
    hint = f"add --preset with one of: {', '.join(fits)}" if fits else f"no preset trains {name!r} networks"
    raise ConfigError(f"--arch is an architecture of space {name!r}, but the settings of "
                      f"{cfg.get('preset') or 'this run'!r} train {have!r} networks; {hint}")


def train(*, arch=None, preset: str | None = None, epochs: int | None = None, set=None, data: str | None = None,
          data_dir=None, seed: int | None = None, out=None, resume=None, tensorboard: bool = False,
          quiet: bool = True, on_event: Events | None = None, device: str | None = None, plugins=None) -> Run:
    """``torchnas train``: ``arch`` (a string, a best.json, a search run or a :class:`Run`)
    trained from scratch with the settings of its run or of ``preset``; or the retraining run
    ``resume`` continued. ``plugins``: files or modules registering the user's own space (a
    search run's own are found in it); recorded in the retraining run."""
    emit = _events(on_event, quiet)
    if resume:
        _refuse_on_resume(arch=arch, preset=preset, epochs=epochs, set=set, data=data, seed=seed, out=out,
                          plugin=plugins or None)
        run = RunDir(resume)
        if run.kind != "train":
            raise RunError(f"{run.path} is not a retraining run: continue a search with torchnas search --resume {run.path}")
        run.check_log(RunDir.HISTORY)             # damage named before any progress is shown
        run.load_checkpoint(run.kind, peek=True)  # and another job's checkpoint
        if device is not None:                    # continue it on another device
            _move(run, run.config(), device)
        emit("run", _about(run, True, run.config(), None))
        from .training.progress import listening
        with listening(lambda d: emit("step", d)):
            _retrain(run, tensorboard, emit)
        return Run(run.path)
    from .train import train_config
    tc = _train_settings(arch, preset, set, epochs, data, data_dir, seed, device, plugins)     # resolved once
    out = _path(out) or f"runs/train-{time.strftime('%Y%m%d-%H%M%S')}"
    recorded = {"plugins": tc.source["plugins"]} if tc.source.get("plugins") else {}    # its space may be the user's
    run = RunDir(out).create({**train_config(tc.arch, tc.source["space"], tc.data, tc.train, tc.seed, tc.net),
                              **recorded})
    emit("run", _about(run, False, run.config(), f"{tc.train['epochs']} epochs"))
    from .training.progress import listening
    with run.new(), listening(lambda d: emit("step", d)):
        _retrain(run, tensorboard, emit)
    return Run(run.path)


def dry_run(*, arch=None, preset: str | None = None, set=None, data: str | None = None, data_dir=None,
            epochs: int | None = None, plugins=None) -> dict:
    """``torchnas train --dry-run``: build the network without loading data; returns its
    architecture, parameter counts and the settings it was built with."""
    tc = _train_settings(arch, preset, set, epochs, data, data_dir, plugins=plugins)   # refuses what the run would
    from .tasks import task_of
    task = task_of(tc.space)
    return task.describe(tc.space, tc.space.parse(tc.arch), tc.data, task.check_net_settings(tc.space, tc.net),
                         where="enas.data" if "enas" in tc.source else "evaluator.data")


def _arch_source(text: str):
    """An architecture string, or the best architecture of a best.json / search run (with its config)."""
    p = as_path(text)
    if p is None:
        return text, None
    if p.is_dir():
        best, cfg = p / RunDir.BEST, RunDir(p).config()
        if not best.exists():
            raise RunError(f"{p} has no {RunDir.BEST} yet: the search has evaluated nothing")
        return _best_arch(best), cfg
    if p.suffix == ".json" and p.is_file():
        cfg_path = p.parent / RunDir.CONFIG
        cfg = RunDir(p.parent).config() if cfg_path.exists() else None
        return _best_arch(p), cfg
    if ":" not in text and ("/" in text or p.suffix == ".json"):      # meant as a path: it is not there
        raise RunError(f"--arch {text}: no such run folder or best.json; give an architecture string "
                       f"(SPACE:v1,v2,...), a best.json or a search run")
    return text, None


def _best_arch(path: Path) -> str:
    """The ``arch`` of a best.json; a file that is not one is named."""
    try:
        best = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise RunError(f"{path} is not valid JSON ({e}); give an architecture string or another run") from None
    if not isinstance(best, dict) or not isinstance(best.get("arch"), str):
        raise RunError(f"{path} has no 'arch' string: it is not a best.json")
    return best["arch"]


# -- torchnas show | export | bench | presets ---------------------------------------------------
def show(run, figures: bool = True, top: int = 5) -> dict:
    """``torchnas show RUN``: print the run's summary and write its figures; returns the
    summary with ``figures``: ``{name: file}`` of what was written."""
    from .show import show_run
    return show_run(Path(run), figures=figures, top=top)


def export(run, out=None, formats=("python", "torchscript", "onnx")) -> dict:
    """``torchnas export RUN``: the retrained network as model.py + state dict, TorchScript and
    ONNX, each loaded back and checked against the original; a search run exports its
    ``retrain/`` run."""
    from .export import export_run
    run = Path(run)
    if not (run / RunDir.MODEL).exists() and RunDir(run).retrain is not None:
        run = run / RunDir.RETRAIN    # a search run: export its retraining (export_run says if unfinished)
    if not (run / RunDir.CONFIG).exists():
        raise RunError(f"{run} is not a run directory")
    record = export_run(run, out, formats=(formats,) if isinstance(formats, str) else tuple(formats))
    record.setdefault("out_dir", str(Path(out) if out else run / "export"))
    return record


def architecture(text: str, *, preset: str | None = None):
    """The :class:`Architecture` a string names (``SPACE:...``, or any string the ``preset``'s
    space parses)."""
    from .show import parse_arch
    return parse_arch(str(text), preset=preset)[1]


def draw(arch, path, *, preset: str | None = None, formats=("svg", "png"), engine: str = "auto") -> list[Path]:
    """A diagram of an architecture (an :class:`Architecture`, or a string with its space
    prefix, or any string the ``preset``'s space parses)."""
    from .spaces import Architecture
    from .viz.diagrams import draw as _draw
    if not isinstance(arch, Architecture):
        arch = architecture(arch, preset=preset)
    return _draw(arch, path, formats=(formats,) if isinstance(formats, str) else tuple(formats), engine=engine)


def ws_rank(run, samples: int = 100, seed: int = 0, batches: int = 8, policy_samples: int = 100,
            data_dir=None) -> dict:
    """``torchnas bench ws-rank RUN``: Kendall τ, Spearman ρ (against the 200-epoch verdict and the
    12-epoch signal, beside parameter count alone), τ within equal sizes and top-10 % hits of an
    ENAS run's shared weights on distinct cells, and its final policy's draws judged by the verdict
    (writes RUN/ws_rank.json and its figure)."""
    from .ws_rank import ws_rank as _ws_rank
    return _ws_rank(run, samples=samples, seed=seed, batches=batches, policy_samples=policy_samples,
                    data_dir=_path(data_dir))


def bench_nb201(strategy: str, *, queries: int = 100, seeds: int = 10, first_seed: int = 0, preset: str = "nb201",
                set=None, data_dir=None, workers: int | None = None, out=None, on_event: Events | None = None) -> dict:
    """``torchnas bench nb201``: ``seeds`` seeded searches on the NAS-Bench-201 table. ``out``: a
    JSON file, checked before anything runs and rewritten (whole, atomically) as each seed
    finishes, with ``complete: false`` until the last one."""
    from .bench import run_nb201_bench
    from .runs import atomic_write_bytes, writable_file
    emit = _events(on_event, quiet=True)
    path = writable_file(str(out), "--out") if out else None

    def on_seed(done, total, seconds, partial):
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(path, (json.dumps({**partial, "complete": done == total}, indent=1) + "\n").encode())
        emit("seeds", {"completed": done, "total": total, "seconds": seconds})
    return run_nb201_bench(strategy, queries, seeds, preset=preset, overrides=_overrides(set),
                           data_dir=_path(data_dir), workers=workers, first_seed=first_seed, on_seed=on_seed)


def bench_scale(*, workers=(8, 64, 800), children: int = 12_800, m=(8,), replicas=None,
                seeds: int = 1, first_seed: int = 0, modes=("sync", "async"), finish=("drain", "cancel"),
                strategy: str = "reinforce", preset: str = "nb201",
                sigma: float = 0.5, data_dir=None, out=None, on_event: Events | None = None) -> dict:
    """``torchnas bench scale``: synchronous against asynchronous search on simulated clusters of
    ``workers`` (the real search loop and strategies on NAS-Bench-201, or on a CIFAR-10 preset
    whose space counts its children's FLOPs with a scripted reward; :mod:`torchnas.scale`).
    ``out``: the rows as JSON lines (checked before anything runs, as the preset is)."""
    from .runs import atomic_write_bytes, writable_file
    from .scale import run_scale
    path = writable_file(str(out), "--out") if out else None
    replicas, m = (list(replicas) if replicas else None), ([m] if isinstance(m, int) else list(m))
    if min(workers) < 1 or children < 1 or min(m) < 1 or (replicas and min(replicas) < 1) or sigma < 0:
        raise ConfigError("bench scale needs workers, children, m and replicas >= 1 and sigma >= 0")
    bad = sorted(set(modes) - {"sync", "async"})
    if bad:
        raise ConfigError(f"bench scale --modes: {bad[0]!r} is not a mode; choose sync and/or async")
    bad = sorted(set(finish) - {"drain", "cancel"})
    if bad or not finish:
        raise ConfigError(f"bench scale --finish: {(bad or [''])[0]!r} is not a way to end; choose drain and/or cancel")
    emit = _events(on_event, quiet=True)
    result = run_scale(list(workers), children, m, replicas, list(range(first_seed, first_seed + seeds)),
                       list(modes), tuple(finish), strategy=strategy, preset=preset, sigma=sigma, data_dir=_path(data_dir),
                       on_run=lambda done, total, seconds: emit("seeds", {"completed": done, "total": total,
                                                                          "what": "searches", "seconds": seconds}))
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, "".join(json.dumps(r) + "\n" for r in result["rows"]).encode())
    return result


def presets() -> list[tuple[str, str]]:
    """(name, description) of every preset."""
    return [(name, load_preset(name).get("description", "")) for name in preset_names()]


__all__ = ["Run", "search", "train", "dry_run", "show", "export", "architecture", "draw", "ws_rank", "bench_nb201", "bench_scale", "presets"]
