"""Executors: where evaluations run. Zoph & Le train children in parallel on many workers.

An executor runs children as jobs: ``submit(evaluator, arch)`` starts one (or queues it for a
free worker) and ``wait(jobs)`` blocks until one of them has its evaluation, so a search can
keep several controller replicas' children in flight (Zoph & Le §3.3). ``map(evaluator,
archs)`` submits them all and yields the evaluations *in the order of archs*, so a synchronous
search logs them in the same order whatever the executor, and a seeded search gives the same
log serially and in parallel. ``LocalPool`` runs a pool of worker processes on this machine, each
with ``threads`` torch threads (workers × threads should not exceed the cores). ``RayPool``
sends each child to a Ray cluster (``executor: {backend: ray, address: auto}``), where Ray's
scheduler places it on any node with ``threads`` free CPUs (and ``gpus`` GPUs).

A worker process that dies (killed, out of memory) loses only its children: both pools start
them again, at most ``retries`` times each, and count the restarts in the evaluation's
``metrics["worker_retries"]``. A child whose workers die more often than that gets reward 0 and
the reason in ``metrics["failed"]`` (Zoph & Le's search goes on past a failed child; issue 29),
and a search never stalls on a dead worker. A worker never outlives its search, whatever kills the search (:func:`quiet_worker`),
and leaves Ctrl-C to it.
"""
from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import signal
import threading
import time
from concurrent import futures
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Iterable, Iterator

from ..spaces import Architecture
from .base import Evaluation, Evaluator


def timed(evaluator: Evaluator, arch: Architecture) -> Evaluation:
    start = time.perf_counter()
    ev = evaluator.evaluate(arch)
    ev.seconds = time.perf_counter() - start
    return ev


class Job:
    """One child submitted to an executor: ``evaluation`` is None until it is done; ``tries``
    counts the restarts after its worker died."""
    __slots__ = ("arch", "evaluation", "tries", "handle", "evaluator", "key")

    def __init__(self, arch: Architecture, evaluator: Evaluator, key=None):
        self.arch, self.evaluator, self.key, self.handle = arch, evaluator, key, None
        self.evaluation: Evaluation | None = None
        self.tries = 0

    @property
    def done(self) -> bool:
        return self.evaluation is not None

    def finish(self, ev: Evaluation) -> "Job":
        self.evaluation, self.handle = _with_retries(ev, self.tries), None
        return self


class Executor:
    def submit(self, evaluator: Evaluator, arch: Architecture) -> Job:
        """Start evaluating ``arch`` (or queue it for the next free worker)."""
        raise NotImplementedError

    def wait(self, jobs: list[Job]) -> Job:
        """Block until one of ``jobs`` is done; the first of them that is."""
        raise NotImplementedError

    def cancel(self, jobs: list[Job]) -> None:
        """Stop ``jobs``: their results are not wanted (a search whose budget is logged). By
        default nothing is stopped: they finish unused."""

    def map(self, evaluator: Evaluator, archs: Iterable[Architecture]) -> Iterator[Evaluation]:
        """Every arch submitted now; the evaluations in the order of ``archs``."""
        jobs = [self.submit(evaluator, a) for a in archs]

        def in_order():
            for job in jobs:
                while not job.done:
                    self.wait([job])
                yield job.evaluation
        return in_order()

    def close(self) -> None:
        pass


def _first_done(jobs: list[Job]) -> Job | None:
    return next((j for j in jobs if j.done), None)


class Serial(Executor):
    """Children evaluated in this process, one at a time, in the order they were submitted."""

    def __init__(self, threads: int | None = None):
        self.threads = threads
        self._queue: list[Job] = []

    def submit(self, evaluator, arch):
        job = Job(arch, evaluator)
        self._queue.append(job)
        return job

    def cancel(self, jobs):
        gone = set(map(id, jobs))
        self._queue = [j for j in self._queue if id(j) not in gone]

    def wait(self, jobs):
        import torch
        if self.threads:
            torch.set_num_threads(self.threads)
        while (done := _first_done(jobs)) is None:
            job = self._queue.pop(0)
            job.finish(timed(job.evaluator, job.arch))
        return done


_WORKER_EVALUATOR: Evaluator | None = None
_WORKER_STARTED = None


def quiet_worker(parent: int) -> None:
    """Set up a worker process of a pool started by process ``parent``: Ctrl-C, which a terminal
    sends to the whole process group, is left to the parent (it stops the pool); SIGTERM ends the
    worker at once, without a traceback; and the worker ends when its parent does, whatever
    killed it (a SIGKILLed parent tells nobody: a daemon thread sees the worker re-parented)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})     # blocked since the start: now ignored
    signal.signal(signal.SIGTERM, signal.SIG_DFL)

    def watch():
        while os.getppid() == parent:
            time.sleep(0.2)
        os._exit(1)
    if os.getppid() != parent:
        os._exit(1)
    threading.Thread(target=watch, name="torchnas-parent-watch", daemon=True).start()


@contextlib.contextmanager
def sigint_blocked_in_children():
    """Processes started inside begin with SIGINT blocked (the signal mask survives fork and exec),
    so a Ctrl-C during their start-up prints nothing; ``quiet_worker`` then ignores it for good.
    The parent's main thread blocks SIGINT for those milliseconds too: a Ctrl-C then waits and is
    raised when they end (ignoring it instead lost it: issue 27). Off the main thread, nothing
    changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def _init_worker(evaluator: Evaluator, threads: int, started=None, parent: int | None = None) -> None:
    global _WORKER_EVALUATOR, _WORKER_STARTED
    if parent is not None:
        quiet_worker(parent)
    import torch
    torch.set_num_threads(threads)
    _WORKER_EVALUATOR, _WORKER_STARTED = evaluator, started


def _evaluate(arch: Architecture, key=None) -> Evaluation:
    if _WORKER_STARTED is not None:
        _WORKER_STARTED.send((key, os.getpid()))     # which worker runs which child: see _StartLog
    return timed(_WORKER_EVALUATOR, arch)


def _with_retries(ev: Evaluation, tries: int) -> Evaluation:
    if tries:
        ev.metrics = {**ev.metrics, "worker_retries": tries}
    return ev


def _gave_up(job: "Job", why: str) -> "Job":
    """A child given up on: reward 0, and why in its metrics (the search goes on)."""
    job.tries -= 1                                   # the last death is not a restart
    return job.finish(Evaluation(0.0, {"failed": f"its worker died {job.tries + 1} times ({why}); is the child "
                                                 f"running out of memory? Lower executor.workers or the child's size"}))


class LocalPool(Executor):
    """A pool of ``workers`` spawned processes (spawn: safe with torch's thread pools).

    A worker that dies breaks the pool (``concurrent.futures`` then stops the other workers);
    the pool is started again and every unfinished child is resubmitted. Each worker reports
    which child it starts, so the child whose own worker died (killed by a signal other than the
    pool's own SIGTERM, or exited) is told apart from the ones stopped beside it: only its
    restarts count (``worker_retries``) and are bounded by ``retries``."""

    def __init__(self, workers: int, threads: int = 1, retries: int = 3):
        if workers < 1 or threads < 1:
            raise ValueError(f"executor needs workers >= 1 and threads >= 1 (got {workers}, {threads})")
        cores = os.cpu_count() or 1
        if workers * threads > cores:
            raise ValueError(f"{workers} workers x {threads} threads exceeds the {cores} cores of this "
                             f"machine; lower executor.workers or executor.threads")
        self.workers, self.threads, self.retries = workers, threads, retries
        self._pool, self._evaluator, self._log = None, None, None
        self._jobs: dict[str, Job] = {}               # key -> child in flight

    def _start(self, evaluator) -> None:
        self._stop()
        ctx = mp.get_context("spawn")
        self._log = _StartLog(ctx)
        self._pool = ProcessPoolExecutor(self.workers, mp_context=ctx, initializer=_init_worker,
                                         initargs=(evaluator, self.threads, self._log.writer, os.getpid()))
        self._evaluator = evaluator

    def _died(self) -> set:
        """Keys of the children whose own worker died in the pool that just broke."""
        procs = getattr(self._pool, "_processes", None) or {}
        deadline = time.monotonic() + 5
        for p in procs.values():                     # the broken pool has stopped them all: reap
            # the pool's own thread reaps them too: a join that loses that race returns with no
            # exit code yet (waitpid's ECHILD), and the winner sets it a moment later
            while p.exitcode is None and time.monotonic() < deadline:
                p.join(timeout=0.05)
                time.sleep(0.005)
        dead = {pid for pid, p in procs.items() if p.exitcode not in (None, 0, -signal.SIGTERM)}
        running = self._log.stop()                   # every message the dead ones wrote is read
        return {key for pid, key in running.items() if pid in dead}

    def submit(self, evaluator, arch):
        if self._pool is None or self._evaluator is not evaluator:
            if any(not j.done for j in self._jobs.values()):
                raise RuntimeError("LocalPool: one evaluator at a time (children of another are in flight)")
            self._start(evaluator)
        job = Job(arch, evaluator, os.urandom(6).hex())
        self._jobs[job.key] = job
        self._send(job)
        return job

    def _send(self, job: Job) -> None:
        try:
            self._submit(job)
        except BrokenProcessPool:                  # a worker died: every child in flight is recovered
            job.handle = None
            self._recover()

    def _submit(self, job: Job) -> None:
        # a submit may start one of the pool's processes: only then is Ctrl-C held back, and
        # raised once the process has started (ignored instead, it was lost)
        starting = len(getattr(self._pool, "_processes", None) or ()) < self.workers
        with sigint_blocked_in_children() if starting else contextlib.nullcontext():
            job.handle = self._pool.submit(_evaluate, job.arch, job.key)

    def wait(self, jobs):
        while (done := _first_done(jobs)) is None:
            futures.wait([j.handle for j in jobs], return_when=futures.FIRST_COMPLETED)
            try:
                for j in jobs:
                    if j.handle.done():
                        self._collect(j)
            except BrokenProcessPool:
                self._recover()
        return done

    def _collect(self, job: Job) -> None:
        job.finish(job.handle.result())
        del self._jobs[job.key]

    def cancel(self, jobs):
        """A started child can only be stopped with its worker: when no other child is in flight
        the workers are stopped (the pool starts again at the next submit); else children still
        queued are cancelled (those the pool has already handed to a worker's queue, and the
        started ones, finish unused)."""
        for job in jobs:
            self._jobs.pop(job.key, None)
            if job.handle is not None:
                job.handle.cancel()
        if self._pool is not None and not self._jobs:
            self._stop()

    def _recover(self) -> None:
        """A worker died and broke the pool: keep what finished before, start the pool again and
        send every other child in flight again; only the children whose own worker died count
        a try (all of them when no culprit is known), up to ``retries``. A pool that breaks while
        they are sent again is recovered the same way (a child not yet sent counts nothing)."""
        while True:
            died = self._died()
            for key, job in list(self._jobs.items()):
                h = job.handle
                if h is None:                      # not sent to the pool that broke
                    continue
                if h.done() and not h.cancelled() and h.exception() is None:
                    self._collect(job)             # finished before the break: kept
                    continue
                job.handle = None
                if key in died or not died:
                    job.tries += 1
                    if job.tries > self.retries:
                        _gave_up(job, "its worker process was killed")
                        del self._jobs[key]
            self._start(self._evaluator)
            try:
                for job in self._jobs.values():
                    if job.handle is None:
                        self._submit(job)
                return
            except BrokenProcessPool:
                continue

    def _stop(self) -> None:
        if self._pool is not None:
            for p in list((getattr(self._pool, "_processes", None) or {}).values()):
                p.terminate()               # a child in the middle of training stops now, not at its end
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
            self._log.close()

    def close(self):
        self._stop()
        self._jobs = {}


class _StartLog:
    """Which worker runs which child: each worker writes "I start child KEY" (key, pid) into a pipe
    before it starts; a thread reads the pipe as the messages come (it must never fill), until
    ``stop``, which then reads the rest. A message is one write of a few bytes, atomic on a pipe:
    a worker killed at any instant leaves none half-written. The pipe is closed only after its
    reader has stopped: closing it under a reader let that reader take the next pool's messages
    from the reused file descriptor (the restart then counted the wrong child)."""

    def __init__(self, ctx):
        self.reader, self.writer = ctx.Pipe(duplex=False)
        self.running: dict[int, str] = {}             # pid -> key of the child it last started
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._listen, name="torchnas-start-log", daemon=True)
        self._thread.start()

    def _listen(self) -> None:
        while not self._done.is_set():
            self._read(0.2)

    def _read(self, timeout: float) -> None:
        while self.reader.poll(timeout):
            key, pid = self.reader.recv()
            self.running[pid] = key
            timeout = 0

    def stop(self) -> dict[int, str]:
        if not self._done.is_set():
            self._done.set()
            self._thread.join()
            self._read(0)
        return self.running

    def close(self) -> None:
        self.stop()
        self.reader.close()
        self.writer.close()


def _check_reachable(address: str | None) -> None:
    """A ``host:port`` cluster address that does not answer: one clear line now, rather than
    Ray's retries and warnings."""
    import socket
    if not address or "://" in address or address == "auto" or ":" not in address:
        return
    host, _, port = address.rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=3).close()
    except (OSError, ValueError) as e:
        raise ValueError(f"no Ray cluster at executor.address={address!r} ({e}); start one (ray start --head) "
                         f"or drop executor.address to run a local Ray instance") from None


def _ray_evaluate(evaluator: Evaluator, arch: Architecture, threads: int) -> Evaluation:
    import torch
    torch.set_num_threads(threads)
    return timed(evaluator, arch)


class RayPool(Executor):
    """Children as Ray tasks, each with ``threads`` CPUs and ``gpus`` GPUs. ``address``: a
    running cluster (``"auto"``, ``"ray://host:10001"``), or None for a local instance of
    ``workers`` × ``threads`` CPUs. The evaluator is sent to the cluster once; its data must be
    readable at the same path on every node. ``map`` gives results in order (as ``LocalPool``);
    ``wait`` takes whichever child Ray finishes first."""

    def __init__(self, workers: int | None = None, threads: int = 1, address: str | None = None, gpus: float = 0.0,
                 retries: int = 3):
        try:
            import ray
        except ImportError:
            raise ImportError("executor backend 'ray' needs Ray: pip install 'torchnas[ray]'") from None
        if threads < 1 or gpus < 0 or (workers is not None and workers < 1):
            raise ValueError(f"ray executor needs workers >= 1, threads >= 1 and gpus >= 0 "
                             f"(got {workers}, {threads}, {gpus})")
        self._ray, self.threads, self.retries, self._owner = ray, threads, retries, not ray.is_initialized()
        if self._owner:
            local = {"num_cpus": workers * threads} if address is None and workers else {}
            _check_reachable(address)
            try:
                ray.init(address=address, include_dashboard=False, log_to_driver=False, **local)
            except ConnectionError as e:
                raise ValueError(f"no Ray cluster at executor.address={address!r} ({str(e).splitlines()[0]}); "
                                 f"start one (ray start --head) or drop executor.address to run a local Ray "
                                 f"instance") from None
        # Ray's own retries are off: a dead worker's child is started again here, and counted
        self._task = ray.remote(num_cpus=threads, num_gpus=gpus, max_retries=0)(_ray_evaluate)

    def submit(self, evaluator, arch):
        if getattr(self, "_sent", None) is not evaluator:     # the evaluator goes to the cluster once
            self._ref, self._sent = self._ray.put(evaluator), evaluator
        job = Job(arch, evaluator, self._ref)
        job.handle = self._task.remote(self._ref, arch, self.threads)   # queued; Ray schedules
        return job

    def wait(self, jobs):
        died = tuple(getattr(self._ray.exceptions, name) for name in
                     ("WorkerCrashedError", "NodeDiedError", "OutOfMemoryError") if hasattr(self._ray.exceptions, name))
        while (done := _first_done(jobs)) is None:
            ready, _ = self._ray.wait([j.handle for j in jobs], num_returns=1)
            job = next(j for j in jobs if j.handle == ready[0])
            try:                                    # a Ray task's failure is its own worker's
                job.finish(self._ray.get(job.handle))
            except died as e:
                job.tries += 1
                if job.tries > self.retries:
                    _gave_up(job, type(e).__name__)
                    continue
                job.handle = self._task.remote(job.key, job.arch, self.threads)
        return done

    def cancel(self, jobs):
        for job in jobs:
            if not job.done:
                self._ray.cancel(job.handle, force=True)     # its worker is stopped; Ray starts another

    def close(self):
        if self._owner and self._ray.is_initialized():
            self._ray.shutdown()


# Below this many forward FLOPs per training step (FLOPs per image x batch) one single-thread
# process per core trains children faster than one process with a thread per core. Measured
# on 2 cores (benchmarks/workers.py, docs/design.md): processes are 1.80x faster at 0.14 GFLOP
# a step, 1.50x at 2.3, 1.10x at 18 and 1.02x at 272; above 100 the gain is a few percent and
# each process would hold its own copy of the child, its gradients and the data.
PROCESSES_BELOW_FLOPS = 1e11


def auto_workers(cores: int, batch: int, step_flops: float | None) -> tuple[int, int]:
    """``executor.workers: auto``: (workers, threads per worker) for children whose training
    step costs ``step_flops`` forward FLOPs, asked ``batch`` at a time, on ``cores`` cores: a
    process per core (at most one per child of a batch) for small children, else one process
    with a thread per core; one process when nothing is trained on the CPU (None)."""
    cores = max(1, cores)
    if step_flops is None or batch < 2 or cores < 2 or step_flops >= PROCESSES_BELOW_FLOPS:
        return 1, cores
    workers = min(cores, batch)
    return workers, max(1, cores // workers)


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
