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

import importlib

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
    if name not in table:
        raise error(f"unknown {_NOUNS[kind]} {name!r}; known: {', '.join(sorted(table))}")
    return table[name]
