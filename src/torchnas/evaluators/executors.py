"""Executors: where evaluations run. Zoph & Le train children in parallel on many workers.

``map(evaluator, archs)`` yields the evaluations *in the order of archs*, so the search loop
logs them in the same order whatever the executor, and a seeded search gives the same log
serially and in parallel. ``LocalPool`` runs a pool of worker processes on this machine, each
with ``threads`` torch threads (workers × threads should not exceed the cores). ``RayPool``
sends each child to a Ray cluster (``executor: {backend: ray, address: auto}``), where Ray's
scheduler places it on any node with ``threads`` free CPUs (and ``gpus`` GPUs).
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


def _ray_evaluate(evaluator: Evaluator, arch: Architecture, threads: int) -> Evaluation:
    import torch
    torch.set_num_threads(threads)
    return timed(evaluator, arch)


class RayPool(Executor):
    """Children as Ray tasks, each with ``threads`` CPUs and ``gpus`` GPUs. ``address``: a
    running cluster (``"auto"``, ``"ray://host:10001"``), or None for a local instance of
    ``workers`` × ``threads`` CPUs. The evaluator is sent once per batch; its data must be
    readable at the same path on every node. Results come back in order (as ``LocalPool``)."""

    def __init__(self, workers: int | None = None, threads: int = 1, address: str | None = None, gpus: float = 0.0):
        try:
            import ray
        except ImportError:
            raise ImportError("executor backend 'ray' needs Ray: pip install 'torchnas[ray]'") from None
        if threads < 1 or gpus < 0 or (workers is not None and workers < 1):
            raise ValueError(f"ray executor needs workers >= 1, threads >= 1 and gpus >= 0 "
                             f"(got {workers}, {threads}, {gpus})")
        self._ray, self.threads, self._owner = ray, threads, not ray.is_initialized()
        if self._owner:
            local = {"num_cpus": workers * threads} if address is None and workers else {}
            ray.init(address=address, include_dashboard=False, log_to_driver=False, **local)
        self._task = ray.remote(num_cpus=threads, num_gpus=gpus)(_ray_evaluate)

    def map(self, evaluator, archs):
        archs = list(archs)
        if not archs:
            return iter(())
        ref = self._ray.put(evaluator)
        futures = [self._task.remote(ref, a, self.threads) for a in archs]   # all queued; Ray schedules
        return (self._ray.get(f) for f in futures)

    def close(self):
        if self._owner and self._ray.is_initialized():
            self._ray.shutdown()


def make_executor(workers: int = 1, threads: int | None = None, backend: str = "local",
                  address: str | None = None, gpus: float = 0.0) -> Executor:
    """``backend: local``: ``workers == 1`` evaluates in this process (with ``threads`` torch
    threads), more start a process pool; ``backend: ray``: :class:`RayPool`."""
    if backend == "ray":
        return RayPool(workers, threads or 1, address, gpus)
    if backend != "local":
        raise ValueError(f"executor backend must be 'local' or 'ray', not {backend!r}")
    if address is not None or gpus:
        raise ValueError("executor address and gpus are settings of backend: ray")
    if workers == 1:
        return Serial(threads)
    return LocalPool(workers, threads or max(1, (os.cpu_count() or 1) // workers))
