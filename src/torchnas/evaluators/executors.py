"""Executors: where evaluations run. Zoph & Le train children in parallel on many workers.

``map(evaluator, archs)`` yields the evaluations *in the order of archs*, so the search loop
logs them in the same order whatever the executor, and a seeded search gives the same log
serially and in parallel. ``LocalPool`` runs a pool of worker processes on this machine, each
with ``threads`` torch threads (workers × threads should not exceed the cores). A cluster
backend (Ray) plugs in behind the same two methods.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import time
from typing import Iterable, Iterator

from ..spaces import Architecture
from .base import Evaluation, Evaluator


def timed(evaluator: Evaluator, arch: Architecture) -> Evaluation:
    start = time.perf_counter()
    ev = evaluator.evaluate(arch)
    ev.seconds = time.perf_counter() - start
    return ev


class Executor:
    def map(self, evaluator: Evaluator, archs: Iterable[Architecture]) -> Iterator[Evaluation]:
        raise NotImplementedError

    def close(self) -> None:
        pass


class Serial(Executor):
    def __init__(self, threads: int | None = None):
        self.threads = threads

    def map(self, evaluator, archs):
        import torch
        if self.threads:
            torch.set_num_threads(self.threads)
        for arch in archs:
            yield timed(evaluator, arch)


_WORKER_EVALUATOR: Evaluator | None = None


def _init_worker(evaluator: Evaluator, threads: int) -> None:
    global _WORKER_EVALUATOR
    import torch
    torch.set_num_threads(threads)
    _WORKER_EVALUATOR = evaluator


def _evaluate(arch: Architecture) -> Evaluation:
    return timed(_WORKER_EVALUATOR, arch)


class LocalPool(Executor):
    """A pool of ``workers`` spawned processes (spawn: safe with torch's thread pools)."""

    def __init__(self, workers: int, threads: int = 1):
        if workers < 1 or threads < 1:
            raise ValueError(f"executor needs workers >= 1 and threads >= 1 (got {workers}, {threads})")
        cores = os.cpu_count() or 1
        if workers * threads > cores:
            raise ValueError(f"{workers} workers x {threads} threads exceeds the {cores} cores of this "
                             f"machine; lower executor.workers or executor.threads")
        self.workers, self.threads = workers, threads
        self._pool, self._evaluator = None, None

    def map(self, evaluator, archs):
        archs = list(archs)
        if not archs:
            return iter(())
        if self._pool is None or self._evaluator is not evaluator:
            self.close()
            ctx = mp.get_context("spawn")
            self._pool = ctx.Pool(self.workers, initializer=_init_worker, initargs=(evaluator, self.threads))
            self._evaluator = evaluator
        return self._pool.imap(_evaluate, archs)

    def close(self):
        if self._pool is not None:
            self._pool.terminate()
            self._pool.join()
            self._pool = None


def make_executor(workers: int = 1, threads: int | None = None) -> Executor:
    """``workers == 1``: evaluate in this process (with ``threads`` torch threads)."""
    if workers == 1:
        return Serial(threads)
    return LocalPool(workers, threads or max(1, (os.cpu_count() or 1) // workers))
