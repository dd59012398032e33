"""One registry for everything a config names: search spaces, strategies, evaluators and tasks.

Each definition registers itself where it is written (timm's ``@register_model``)::

    @register("space")
    class NB201Space(SearchSpace):
        name = "nb201"

:func:`registered` imports the kind's home package first, so every built-in definition is
present; a user's own module registers on import. Tests parametrise over ``registered(kind)``,
so a new space or strategy is checked by the contract tests without being listed by hand.
"""
from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from pathlib import Path

HOMES = {"space": "torchnas.spaces", "strategy": "torchnas.strategies", "evaluator": "torchnas.evaluators",
         "task": "torchnas.tasks"}
_TABLES: dict[str, dict[str, object]] = {kind: {} for kind in HOMES}
_NOUNS = {"space": "search space", "strategy": "strategy", "evaluator": "evaluator", "task": "task"}


def register(kind: str, name: str | None = None):
    """Decorator: register a class (under its ``name`` attribute, or ``name``) or a factory."""
    if kind not in _TABLES:
        raise ValueError(f"unknown registry {kind!r}; kinds: {', '.join(HOMES)}")

    def add(obj):
        key = name or getattr(obj, "name", None)
        if not key:
            raise ValueError(f"{obj!r} needs a name to be registered as a {kind}")
        if _TABLES[kind].get(key, obj) is not obj:
            raise ValueError(f"{kind} {key!r} is registered twice ({_TABLES[kind][key]!r} and {obj!r})")
        _TABLES[kind][key] = obj
        return obj
    return add


def registered(kind: str) -> dict[str, object]:
    """``{name: definition}`` of a kind, built-in ones included."""
    if kind not in HOMES:
        raise ValueError(f"unknown registry {kind!r}; kinds: {', '.join(HOMES)}")
    importlib.import_module(HOMES[kind])
    return dict(_TABLES[kind])


def lookup(kind: str, name: str, error=ValueError):
    """The definition registered as ``name``; ``error`` (naming the known ones) if none is."""
    table = registered(kind)
    if not isinstance(name, str):
        raise error(f"{_NOUNS[kind]} name must be a word, not {name!r}; known: {', '.join(sorted(table))}")
    if name not in table:
        err = error(f"unknown {_NOUNS[kind]} {name!r}; known: {', '.join(sorted(table))}")
        err.unknown_kind = kind             # the CLI suggests --plugin where the command takes it
        raise err
    return table[name]


class PluginError(ValueError):
    """A plugin named in a config (``plugins:``, ``--plugin``) cannot be imported."""


def load_plugins(names) -> None:
    """Import each plugin: a module name (``mypkg.spaces``) or a Python file (``my_space.py``), whose
    ``@register`` lines add its spaces, strategies, evaluators or tasks. A file is imported once
    per process under a name made from its absolute path, so a run that names it again (resume,
    show) finds the same definitions."""
    for name in names or ():
        path = Path(name).expanduser()
        try:
            if name.endswith(".py") or path.is_file():
                path = path.resolve()
                mod = f"torchnas_plugin_{path.stem}_{hashlib.sha256(str(path).encode()).hexdigest()[:8]}"
                if mod in sys.modules:
                    continue
                if not path.is_file():
                    raise FileNotFoundError(f"no such file {path}")
                spec = importlib.util.spec_from_file_location(mod, path)
                module = importlib.util.module_from_spec(spec)
                sys.modules[mod] = module
                try:
                    spec.loader.exec_module(module)
                except BaseException:
                    del sys.modules[mod]
                    raise
            else:
                importlib.import_module(name)
        except Exception as e:                     # noqa: BLE001 - the user's code: any error, one line
            raise PluginError(f"plugin {name!r} cannot be imported: {type(e).__name__}: {e}") from None


def plugin_paths(names, base: Path | None = None) -> list[str]:
    """``names`` as a run records them: files as absolute paths (relative to ``base``, else the
    working folder), module names as they are."""
    out = []
    for name in names or ():
        p = Path(name).expanduser()
        if name.endswith(".py") or p.is_file():
            out.append(str(((base or Path.cwd()) / p).resolve() if not p.is_absolute() else p))
        else:
            out.append(name)
    return out
