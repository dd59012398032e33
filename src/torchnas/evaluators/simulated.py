"""A discrete-event simulation of a cluster: the executor and the clock, nothing else.

``SimulatedPool`` stands where ``LocalPool`` or ``RayPool`` stand, so the search loop, the
strategies and the controller that use it are the real ones (issue 29: Zoph & Le's 800 workers
on one machine). A submitted child waits in submission order for a free worker; once a worker
takes it, it finishes ``duration(arch)`` simulated seconds later, with the evaluation its
evaluator gives (a table look-up or a scripted reward, computed at once). ``wait`` moves the
clock to the next finish. ``utilisation()`` is the workers' busy time over ``workers × now``;
``cancel`` stops children (their time so far is busy but ``wasted``: ``useful_utilisation()``
leaves it out).
"""
from __future__ import annotations

import heapq
from collections import deque
from typing import Callable

from ..spaces import Architecture
from .executors import Executor, Job, _first_done


class SimulatedPool(Executor):
    """``workers`` simulated workers; ``duration(arch) -> seconds`` is called when a worker takes
    the child (so a seeded duration model draws in the order children start)."""

    def __init__(self, workers: int, duration: Callable[[Architecture], float]):
        if workers < 1:
            raise ValueError(f"a simulated cluster needs workers >= 1, got {workers}")
        self.workers, self.duration = workers, duration
        self.now = 0.0
        self.idle = workers
        self.started = 0
        self.last_start = 0.0                                      # when the last child was taken
        self.wasted = 0.0                                          # worker-seconds of cancelled children
        self._spans: list[tuple[float, float]] = []               # (start, finish) of every child
        self._queue: deque[Job] = deque()
        self._events: list[tuple[float, int, Job]] = []          # (finish time, start order, job)

    def submit(self, evaluator, arch):
        job = Job(arch, evaluator)
        self._queue.append(job)
        self._dispatch()
        return job

    def _dispatch(self) -> None:
        while self.idle and self._queue:
            job = self._queue.popleft()
            seconds = float(self.duration(job.arch))
            if not seconds >= 0:
                raise ValueError(f"a simulated child's duration must be >= 0 seconds, got {seconds}")
            ev = job.evaluator.evaluate(job.arch)
            ev.seconds = seconds
            job.handle, job.key = ev, len(self._spans)
            self.idle -= 1
            self.started += 1
            self.last_start = self.now
            self._spans.append((self.now, self.now + seconds))
            heapq.heappush(self._events, (self.now + seconds, self.started, job))

    def wait(self, jobs):
        while (done := _first_done(jobs)) is None:
            if not self._events:
                raise RuntimeError("the simulated cluster has nothing running: a job waited for was never submitted")
            self.now, _, job = heapq.heappop(self._events)
            job.finish(job.handle)
            self.idle += 1
            self._dispatch()
        return done

    def cancel(self, jobs):
        """Queued children are dropped; running ones stop now (a worker freed); finished ones are
        not used. Their worker-seconds count as busy and as ``wasted``."""
        gone = {id(j) for j in jobs}
        self._queue = deque(j for j in self._queue if id(j) not in gone)
        for job in jobs:
            if job.key is None:                    # never started
                continue
            a, b = self._spans[job.key]
            if not job.done:
                b = self.now
                self._spans[job.key] = (a, b)
                self.idle += 1
            self.wasted += b - a
            job.key = None                         # counted once, however often it is cancelled
        self._events = [e for e in self._events if id(e[2]) not in gone]
        heapq.heapify(self._events)
        self._dispatch()

    def useful_utilisation(self) -> float:
        """Worker-seconds of the children whose results were used over ``workers × now``."""
        return (self.busy - self.wasted) / (self.workers * self.now) if self.now > 0 else 0.0

    @property
    def busy(self) -> float:
        """Worker-seconds of every child taken so far (running ones in full)."""
        return sum(b - a for a, b in self._spans)

    def utilisation(self, until: float | None = None) -> float:
        """Busy worker-seconds over ``workers × until`` (default: ``now``, the whole run; a search
        that drains its last children idles at its end, so ``until=last_start`` measures the
        workers while the search still had children to give them)."""
        until = self.now if until is None else until
        if until <= 0:
            return 0.0
        return sum(max(0.0, min(b, until) - a) for a, b in self._spans) / (self.workers * until)
