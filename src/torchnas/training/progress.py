"""Step-level progress of the training loops (a minibatch, a BPTT window): the command that
runs them listens for its lifetime (``torchnas.api`` turns each step into a ``step`` event)."""
from __future__ import annotations

import contextlib
from typing import Callable

_listener: Callable[[dict], None] | None = None


@contextlib.contextmanager
def listening(fn: Callable[[dict], None]):
    """Call ``fn({done, total, items, unit, seconds})`` after each training step inside."""
    global _listener
    previous, _listener = _listener, fn
    try:
        yield
    finally:
        _listener = previous


def step(done: int, total: int | None, items: int, unit: str, seconds: float) -> None:
    """Report ``done`` of ``total`` steps of this epoch, ``items`` images or tokens so far."""
    if _listener is not None:
        _listener({"done": done, "total": total, "items": items, "unit": unit, "seconds": seconds})
