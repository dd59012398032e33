"""Configurations: YAML presets, overrides, and the objects a config describes.

A preset (``torchnas/presets/NAME.yaml``) is a full configuration plus, under ``strategies``,
the settings each strategy uses on that problem; resolving picks one strategy::

    space: {name: nb201}
    evaluator: {name: nb201, reward: cifar10valid_xvalid_acc_12ep}
    budget: 100
    seed: 0
    strategy: reinforce
    strategies: {reinforce: {...}, random: {}, evolution: {...}}

The resolved config (``strategy: {name: reinforce, ...}``, no ``strategies``) is what a run
directory records, and what ``--resume`` rebuilds the run from.
"""
from __future__ import annotations

import copy
import re
from importlib import resources
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict


DEFAULT_PRESET = "nas-cnn-tiny"


class _Loader(yaml.SafeLoader):
    """YAML 1.1's safe loader, except that a plain ``1e-3`` or ``5E+2`` is a float (YAML 1.1 wants
    a dot and a signed exponent, so it reads those as strings); a quoted one stays a string."""


def _unique_mapping(loader, node, deep=False):
    """A mapping whose keys are unique: YAML would silently keep the last of two equal keys."""
    seen = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (first on line {seen[key] + 1}): keep one of them",
                key_node.start_mark)
        seen[key] = key_node.start_mark.line
    return loader.construct_mapping(node, deep)


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _unique_mapping)
_Loader.add_implicit_resolver("tag:yaml.org,2002:float",
                              re.compile(r"^[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)[eE][-+]?[0-9]+$"), list("-+0123456789."))


def read_yaml(text: str):
    """A config's YAML (presets, --config files, --set values)."""
    return yaml.load(text, Loader=_Loader)


def yaml_problem(e: Exception) -> str:
    """A YAML error on one line: the problem and where."""
    mark = getattr(e, "problem_mark", None)
    where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
    return f"{getattr(e, 'problem', None) or str(e).splitlines()[0]}{where}"


class ConfigError(ValueError):
    """A configuration value is missing, unknown or impossible; the message names it."""


def preset_names() -> list[str]:
    return sorted(p.name[:-5] for p in resources.files("torchnas.presets").iterdir() if p.name.endswith(".yaml"))


def load_preset(name: str) -> dict:
    path = resources.files("torchnas.presets") / f"{name}.yaml"
    if not path.is_file():
        raise ConfigError(f"unknown preset {name!r}; available presets: {', '.join(preset_names())}")
    cfg = read_yaml(path.read_text())
    cfg["preset"] = name
    return cfg


def load_file(path: str | Path) -> dict:
    p = Path(path)
    if p.is_dir():
        raise ConfigError(f"config file {p} is a folder; give a YAML file")
    if not p.is_file():
        raise ConfigError(f"config file {p} does not exist")
    try:
        cfg = read_yaml(p.read_text(encoding="utf-8"))
    except UnicodeDecodeError as e:
        raise ConfigError(f"config file {p} is not UTF-8 text (byte {e.start}): is it a YAML file?") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"config file {p} is not valid YAML: {yaml_problem(e)}") from None
    if not isinstance(cfg, dict):
        raise ConfigError(f"config file {p} must hold a mapping of settings, not {type(cfg).__name__}")
    return cfg


def apply_override(cfg: dict, assignment: str) -> None:
    """Apply ``a.b.c=value`` (value parsed as YAML) in place."""
    key, sep, raw = assignment.partition("=")
    if not sep or not key:
        raise ConfigError(f"override {assignment!r} must look like key.sub=value")
    value = read_yaml(raw)
    parts = key.split(".")
    node = cfg
    for p in parts[:-1]:
        if not isinstance(node.get(p, {}), dict):
            raise ConfigError(f"override {assignment!r}: {p!r} is not a section")
        node = node.setdefault(p, {})
    node[parts[-1]] = value


def _is_count(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


# What each top-level key holds: (a test, what to say it must be). Sections are then checked
# against what they configure (settings.checked); this is the shape above them.
_SECTION = (lambda v: isinstance(v, dict), "a section (key: value settings)")
_MAYBE_SECTION = (lambda v: v is None or isinstance(v, dict), "a section (key: value settings) or null")
_NAME = (lambda v: isinstance(v, str) and v.strip() != "", "a name")
_MAYBE_NAME = (lambda v: v is None or (isinstance(v, str) and v.strip() != ""), "a name or null")
TOP_TYPES = {
    "space": _SECTION, "evaluator": _SECTION, "executor": _MAYBE_SECTION, "search": _MAYBE_SECTION,
    "train": _MAYBE_SECTION,
    "enas": _SECTION, "final_net": _MAYBE_SECTION,
    "strategy": (lambda v: isinstance(v, dict) or (isinstance(v, str) and v.strip() != ""),
                 "a strategy's name or a section with its name"),
    "strategies": (lambda v: v is None or (isinstance(v, dict) and all(isinstance(x, dict) or x is None
                                                                       for x in v.values())),
                   "a section of settings per strategy name (reinforce: {...}, random: {...})"),
    "budget": (lambda v: _is_count(v) and v >= 1, "a positive whole number of architectures"),
    "max_proposals": (lambda v: v is None or (_is_count(v) and v >= 1),
                      "a positive whole number of proposals, or null for 10 x the budget"),
    "seed": (lambda v: _is_count(v) and v >= 0, "a whole number >= 0"),
    "retrain": (lambda v: isinstance(v, bool), "true or false"),
    "data_dir": _NAME, "preset": _NAME, "description": (lambda v: isinstance(v, str), "text"),
    "final": _MAYBE_NAME, "arch": _NAME,
    "plugins": (lambda v: isinstance(v, list) and all(isinstance(x, str) and x.strip() for x in v),
                "a list of Python files or module names"),
}
TOP_KEYS = set(TOP_TYPES)


def check_top_level(cfg) -> None:
    """Every top-level key known and of its kind (booleans are not numbers); one line naming the
    first that is not, what it holds and what it must be."""
    if not isinstance(cfg, dict):
        raise ConfigError(f"a configuration is a mapping of settings, not {type(cfg).__name__}")
    unknown = set(cfg) - TOP_KEYS
    if unknown:
        raise ConfigError(f"unknown config keys {sorted(map(str, unknown))}; allowed: {sorted(TOP_KEYS)}")
    for key in sorted(cfg):
        ok, what = TOP_TYPES[key]
        if not ok(cfg[key]):
            hint = " (YAML reads yes/no/on/off as true/false)" if isinstance(cfg[key], bool) else ""
            raise ConfigError(f"{key} = {cfg[key]!r}{hint}: must be {what}")


def require_named(cfg: dict, keys) -> None:
    """Each of ``keys`` a section with a ``name`` (what is built from it is looked up by it)."""
    for key in keys:
        if not isinstance(cfg.get(key), dict) or "name" not in cfg[key]:
            raise ConfigError(f"config needs a '{key}' section with a 'name'")


def resolve(cfg: dict, strategy: str | None = None) -> dict:
    """Pick the strategy (from ``strategy`` or the config's own) and check the top level."""
    check_top_level(cfg)
    cfg = copy.deepcopy(cfg)
    table = cfg.pop("strategies", {}) or {}
    chosen = cfg.get("strategy", "reinforce")
    if isinstance(chosen, dict):
        base = dict(chosen)
        name = strategy or base.get("name")
        if strategy and strategy != base.get("name"):
            base = {}
    else:
        name, base = strategy or chosen, {}
    settings = {**(table.get(name) or {}), **{k: v for k, v in base.items() if k != "name"}}
    cfg["strategy"] = {"name": name, **settings}
    require_named(cfg, ("space",) if "enas" in cfg else ("space", "evaluator"))
    cfg.setdefault("budget", 100)
    cfg.setdefault("seed", 0)
    return cfg


def final_settings(cfg: dict) -> tuple[dict, dict | None]:
    """(``final_net``, ``train``) for retraining: the config's own, or those of the preset
    its ``final`` key names (ENAS search presets point at their ``*-final`` preset)."""
    net, train = cfg.get("final_net") or {}, cfg.get("train")
    if cfg.get("final"):   # the config's own values (e.g. from --set) override the named preset's
        final = load_preset(cfg["final"])
        net = {**(final.get("final_net") or {}), **net}
        train = {**(final.get("train") or {}), **(train or {})} if final.get("train") or train else None
    return net, train


def trains_networks(evaluator: dict | None) -> bool:
    """Whether the evaluator a config names trains child networks on a ``data`` section (its
    class says so: ``Evaluator.trains_networks``), rather than looking them up in a table."""
    from .evaluators import evaluator_class
    from .registry import registered
    name = (evaluator or {}).get("name")
    return isinstance(name, str) and name in registered("evaluator") and bool(getattr(evaluator_class(name), "trains_networks", False))


def data_section(cfg: dict) -> dict | None:
    """The config section whose ``data`` names the image or text data: ``enas`` or an evaluator
    that trains networks (None for a tabular search)."""
    if "enas" in cfg:
        return cfg["enas"]
    ev = cfg.get("evaluator") or {}
    return ev if trains_networks(ev) else None


def retraining_data(cfg: dict) -> dict:
    """The data a derived architecture retrains on: the search's, at the images' full size
    (``image_size`` shrinks them for the search only, docs/design.md)."""
    data = (data_section(cfg) or {}).get("data") or {"name": "digits"}
    return {k: v for k, v in data.items() if k != "image_size"}


def set_device(cfg: dict, device: str) -> None:
    """``--device``: where the config's networks train, in every section that trains one (the
    search's evaluator or ENAS section, the retraining's ``train``); a new search or a resumed
    search or retraining run alike. The device is checked here, by the option's name."""
    from .training.device import default_device
    default_device(device)
    if cfg.get("kind") == "train":
        cfg["train"]["device"] = device
        return
    section = data_section(cfg)
    if section is None:
        raise ConfigError(f"--device chooses where networks train; preset {cfg.get('preset')!r} looks "
                          f"its architectures up in a table")
    section["device"] = device
    if final_settings(cfg)[1] is not None:           # the retraining runs there too
        cfg["train"] = {**(cfg.get("train") or {}), "device": device}


def data_config(name: str, data_dir: str | None, base: dict | None = None) -> dict:
    """``--data NAME [--data-dir PATH]``: for ``folder`` PATH is the image folder; for ``cifar10``
    it is the data root, the ``cifar-10-batches-py`` folder, or the folder holding it; for
    ``ptb`` the data root or the folder with ``ptb.train.txt``."""
    kept = ("valid_size", "per_class", "seed", "train_tokens", "image_size")
    cfg = {k: v for k, v in (base or {}).items() if k in kept}
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


def search_config(*, preset: str | None = None, config=None, set=(), queries: int | None = None,
                  workers: int | None = None, seed: int | None = None, data: str | None = None,
                  data_dir: str | None = None, strategy: str | None = None, device: str | None = None,
                  plugins=(), retrain: bool = True) -> "RunConfig":
    """The configuration of a new search, resolved once: a preset (default ``nas-cnn-tiny``) or a
    config file, then the ``--set`` overrides, then the command's own options (``retrain``
    False is recorded, so --resume does not retrain either). ``plugins`` (and
    the config's own ``plugins:``, files relative to the config file) are imported first and
    recorded with absolute paths, so a resumed run and ``torchnas show`` import them again."""
    from .registry import load_plugins, plugin_paths
    if isinstance(config, dict):                 # the Python API: a config as a dict
        cfg = copy.deepcopy(config)
    else:
        cfg = load_file(config) if config else load_preset(preset or DEFAULT_PRESET)
    if isinstance(cfg.get("plugins"), list) and config is not None and not isinstance(config, dict):
        cfg["plugins"] = plugin_paths(cfg["plugins"], Path(config).resolve().parent)
    if plugins:
        cfg["plugins"] = list(cfg.get("plugins") or []) + plugin_paths(plugins)
    for assignment in set or []:
        apply_override(cfg, assignment)
    check_top_level(cfg)                         # the shape first: the options below read sections
    load_plugins(cfg.get("plugins"))
    if queries is not None:
        if not _is_count(queries) or queries < 1:
            raise ConfigError(f"--queries {queries!r}: the budget must be a positive whole number of architectures")
        if "enas" in cfg:
            raise ConfigError("--queries is a search's budget of architectures; an ENAS search runs for "
                              "enas.epochs instead (--set enas.epochs=N)")
        cfg["budget"] = queries
    if workers is not None:
        cfg.setdefault("executor", {})["workers"] = workers
        cfg["executor"].pop("threads", None)
    if seed is not None:
        cfg["seed"] = seed
    section = data_section(cfg)
    if device is not None:
        set_device(cfg, device)
    if data and section is None:
        raise ConfigError(f"--data chooses image data for a search that trains networks; preset "
                          f"{cfg.get('preset')!r} evaluates with {cfg['evaluator'].get('name')!r}")
    if section is not None and (data or data_dir):
        base = section.get("data") or {"name": "digits"}
        if not isinstance(base, dict) or not (data or isinstance(base.get("name"), str)):
            where = "enas" if "enas" in cfg else "evaluator"
            raise ConfigError(f"{where}.data = {base!r}: must be a section with a name (name: digits, cifar10, "
                              f"folder or ptb, ...)")
        section["data"] = data_config(data or base["name"], data_dir, base)
    if data_dir:
        cfg["data_dir"] = str(Path(data_dir).resolve())
    if not retrain:
        cfg["retrain"] = False
    return RunConfig.of(cfg, strategy)


def _run_config(cfg) -> "RunConfig":
    return cfg if isinstance(cfg, RunConfig) else RunConfig.of(cfg)


def build_space(cfg: "RunConfig | dict"):
    from .spaces import space_from_config
    return space_from_config(cfg.space if isinstance(cfg, RunConfig) else cfg["space"])


def build_strategy(cfg: "RunConfig | dict", space, seed: int | None = None):
    from .strategies import make_strategy
    rc = _run_config(cfg)
    strat = dict(rc.strategy)
    return make_strategy(strat.pop("name"), space, seed=rc.seed if seed is None else seed, settings=strat)


def build_evaluator(cfg: "RunConfig | dict", data_dir: str | None = None, space=None):
    from .evaluators import make_evaluator
    rc = _run_config(cfg)
    ev = dict(rc.evaluator)
    space = space or build_space(rc)
    return make_evaluator(ev.pop("name"), space=space, data_dir=data_dir or rc.data_dir, seed=rc.seed, settings=ev)


def check_executor(cfg: "RunConfig | dict") -> dict:
    """The ``executor`` section, checked: known keys, ``workers`` ``auto`` (sized from the
    children, :func:`~torchnas.evaluators.executors.auto_workers`; with Ray a task per child of
    a batch) or in 1 .. 4 × the CPU count (a bigger pool only thrashes), ``threads`` >= 1."""
    import os
    ex = dict((cfg.executor if isinstance(cfg, RunConfig) else cfg.get("executor")) or {})
    unknown = set(ex) - {"workers", "threads", "backend", "address", "gpus"}
    if unknown:
        raise ConfigError(f"executor takes workers, threads, backend (local or ray), address and gpus, "
                          f"not {sorted(unknown)}")
    if ex.get("backend", "local") not in ("local", "ray"):
        raise ConfigError(f"executor backend must be 'local' or 'ray', not {ex['backend']!r}")
    local = ex.get("backend", "local") == "local"         # a Ray cluster's size is not this machine's
    limit = 4 * (os.cpu_count() or 1) if local else float("inf")
    workers = ex.get("workers", 1)
    if workers == "auto":
        if "threads" in ex:
            raise ConfigError("executor.threads goes with a number of workers; 'auto' chooses both")
        return ex                                         # sized from the children: api._prepare_search
    if not isinstance(workers, int) or isinstance(workers, bool) or not 1 <= workers <= limit:
        raise ConfigError(f"--workers (executor.workers) must be 'auto' or a whole number from 1 to {limit} "
                          f"(4 x this machine's {os.cpu_count()} CPUs), got {workers!r}")
    threads = ex.get("threads")
    if threads is not None and (not isinstance(threads, int) or isinstance(threads, bool) or threads < 1):
        raise ConfigError(f"executor.threads must be a whole number >= 1, got {threads!r}")
    return ex


def build_executor(cfg: "RunConfig | dict"):
    from .evaluators.executors import make_executor
    return make_executor(**check_executor(cfg))


def build(cfg: "RunConfig | dict", data_dir: str | None = None):
    """The space, strategy and evaluator a resolved config describes."""
    rc = _run_config(cfg)
    space = build_space(rc)
    return space, build_strategy(rc, space), build_evaluator(rc, data_dir, space)


class RunConfig(BaseModel):
    """A search's configuration, resolved once at the top (issue 27 item 9): ``raw`` is what the
    run's config.yaml records (the top level checked, one strategy picked); every other field is
    read from it here, once, and the layers below receive these instead of re-reading the dict
    (the retraining's ``final`` preset is loaded once, the evaluator's kind is asked once)."""
    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)
    raw: dict
    kind: Literal["search", "enas"]
    preset: str | None
    space: dict
    strategy: dict                      # {name: ..., settings}
    seed: int
    budget: int                         # distinct architectures (a search; ENAS runs enas.epochs)
    max_proposals: int | None
    evaluator: dict | None
    enas: dict | None
    executor: dict
    search: dict                        # the search loop's settings: mode (sync | async), replicas
    data: dict | None                   # the section that names the data (ENAS, or a trainer): None for a table
    final_net: dict
    final_train: dict | None            # None: nothing to retrain
    retrain: bool                       # the user's --no-retrain, recorded
    data_dir: str | None
    plugins: list[str]

    @classmethod
    def of(cls, cfg: dict, strategy: str | None = None) -> "RunConfig":
        raw = resolve(cfg, strategy)
        net, train = final_settings(raw)
        return cls(raw=raw, kind="enas" if "enas" in raw else "search", preset=raw.get("preset"),
                   space=raw["space"], strategy=raw["strategy"], seed=raw["seed"], budget=raw["budget"],
                   max_proposals=raw.get("max_proposals"), evaluator=raw.get("evaluator"), enas=raw.get("enas"),
                   executor=raw.get("executor") or {}, search=raw.get("search") or {}, data=data_section(raw), final_net=net, final_train=train,
                   retrain=raw.get("retrain", True), data_dir=raw.get("data_dir"), plugins=raw.get("plugins") or [])

    @property
    def retrains(self) -> bool:
        """Whether the best architecture is trained from scratch after the search: the run has
        retraining settings, trains networks (a table's cells have nothing to retrain on) and
        the user did not say --no-retrain."""
        return self.retrain and self.final_train is not None and self.data is not None

    def with_executor(self, executor: dict) -> "RunConfig":
        """The same run with its executor sized (``workers: auto`` made numbers, recorded)."""
        return self.model_copy(update={"executor": executor, "raw": {**self.raw, "executor": executor}})

    def with_budget(self, budget: int) -> "RunConfig":
        """``--resume --queries N``: the same run with a larger budget."""
        return RunConfig.of({**self.raw, "budget": budget})
