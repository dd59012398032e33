"""The search loop: ask the strategy, evaluate what is new, tell the strategy, checkpoint.

The budget counts *distinct* evaluated architectures; a repeat is answered from the cache
and costs nothing (the strategy still learns from it). A strategy that keeps proposing
architectures it has already seen stops the search after ``max_proposals`` proposals
(default ``10 × budget``) so that a collapsed policy cannot loop forever.

``replicas`` (K, Zoph & Le §3.3) is how many asked batches may be in flight at once. With one
(synchronous: the default) the loop asks a batch, waits for every child of it, tells, and asks
again. With K > 1 (asynchronous) a replica asks again as soon as its own batch is told, while the
others' children still train; the strategy gets each batch with the version it was asked at
(:meth:`Strategy.ask_versioned`). Each child is logged when it finishes, in its batch's order: a
child finished before an earlier one of its own batch waits for it. An architecture already in
flight for another replica is not trained twice: its batch waits for that result. Such a batch,
like one of cached children, holds no worker, so while fewer than K × m children train the loop
asks further batches (at most K × (m + 4) in flight) and the workers stay busy. ``finish``: how
the search ends: ``drain`` (every child asked counts toward the budget, and the search waits for
the last of them) or ``cancel`` (asynchronous only: replicas ask until the budget's children are
logged; the children still in flight are then stopped, not logged, and counted in ``cancelled``).

Resumption: the checkpoint is written after a ``tell`` (at most every ``checkpoint_every``
seconds, and at the end) and records how many log lines it covers. A synchronous search resumes
exactly: the strategy is restored and asks its interrupted batch again; evaluations logged after
the checkpoint are taken from the log instead of being recomputed, so a run stopped at any point
and resumed writes the same evaluation log as one that never stopped. An asynchronous search keeps
every logged child (none is lost or logged twice) and samples the children that were in flight
again from the restored strategy; which children finish first depends on timing, so it is not
bit-identical to a run that never stopped (docs/design.md).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Literal


from .evaluators import Evaluator
from .evaluators.executors import Executor, Serial
from .runs import RunDir, RunError, rng_states, set_rng_states
from .settings import Count, SettingsError
from .spaces import Architecture, SearchSpace
from .strategies import Strategy


def loop_settings(mode: Literal["sync", "async"] = "sync", replicas: Count | None = None,
                  finish: Literal["drain", "cancel"] = "drain") -> dict:
    """The ``search:`` section: ``mode: sync`` (one batch in flight) or ``async`` (Zoph & Le
    §3.3: ``replicas`` batches in flight; by default enough to fill the workers); ``finish``:
    wait for every child asked (``drain``) or stop those in flight once the budget is logged
    (``cancel``, asynchronous only; docs/design.md)."""
    if mode == "sync" and replicas not in (None, 1):
        raise SettingsError(f"search.replicas = {replicas}: replicas in flight need search.mode: async")
    if mode == "sync" and finish == "cancel":
        raise SettingsError("search.finish = cancel: a synchronous search has no child in flight beyond its "
                            "budget to cancel; set search.mode: async or drop search.finish")
    return {"mode": mode, "replicas": replicas, "finish": finish}


def replicas_for(settings: dict, workers: int, batch: int) -> int:
    """K: 1 when synchronous; else ``replicas``, or as many batches as fill ``workers``."""
    if settings.get("mode", "sync") == "sync":
        return 1
    return settings.get("replicas") or max(1, -(-workers // max(1, batch)))


@dataclass
class SearchResult:
    best: dict | None
    evaluations: list[dict]
    trajectory: list[float] = field(default_factory=list)   # best reward after each new query
    proposals: int = 0
    stopped_early: bool = False
    cancelled: int = 0              # finish="cancel": children asked but not logged (stopped, or done behind a slower one of their batch)


class Search:
    FLIGHTS_PER_REPLICA = 4             # batches holding no worker, at most, per replica (K) in flight

    def __init__(self, space: SearchSpace, strategy: Strategy, evaluator: Evaluator, budget: int,
                 run_dir: RunDir | None = None, max_proposals: int | None = None,
                 on_evaluation: Callable[[dict], None] | None = None, checkpoint_every: float = 5.0,
                 executor: Executor | None = None, replicas: int = 1,
                 on_update: Callable[[dict], None] | None = None, finish: str = "drain"):
        if budget < 1:
            raise ValueError(f"budget must be >= 1 distinct architectures, got {budget}")
        if replicas < 1:
            raise ValueError(f"replicas must be >= 1 batches in flight, got {replicas}")
        if finish not in ("drain", "cancel"):
            raise ValueError(f"finish must be 'drain' or 'cancel', got {finish!r}")
        self.replicas, self.finish = replicas, finish
        self.space, self.strategy, self.evaluator = space, strategy, evaluator
        self.budget = budget
        self.max_proposals = max_proposals or 10 * budget
        self.run_dir = run_dir
        self.checkpoint_every = checkpoint_every
        self.executor = executor or Serial()
        self._last_checkpoint = -float("inf")
        self.on_evaluation, self.on_update = on_evaluation, on_update
        self.cache: dict[Architecture, dict] = {}
        self.log: list[dict] = []
        self.trajectory: list[float] = []
        self.best: dict | None = None
        self.proposals = self.updates = 0
        self.elapsed = 0.0          # seconds spent before this process's run() began
        self._t0 = time.perf_counter()
        self._replay: dict[Architecture, dict] = {}

    # -- resumption -------------------------------------------------------------------------
    def resume(self) -> "Search":
        """Restore from the run directory's checkpoint (no-op for a run never checkpointed)."""
        if self.run_dir is None:
            raise RunError("resume needs a run directory")
        n_evals = n_updates = 0

        def load(ckpt: dict) -> None:
            nonlocal n_evals, n_updates
            n_evals, n_updates = ckpt["evaluations"], ckpt["updates"]
            self.strategy.load_state_dict(ckpt["strategy"])
            self.proposals, self.updates, self.elapsed = ckpt["proposals"], ckpt["updates"], ckpt["elapsed"]
            set_rng_states(ckpt["rng"])
        self.run_dir.load_checkpoint("search", restore=load)
        all_evals = self.run_dir.restore({RunDir.EVALS: n_evals, RunDir.STEPS: n_updates}, replay=(RunDir.EVALS,))[RunDir.EVALS]
        exact = self.replicas == 1          # a synchronous search asks the same batches again
        for rec in all_evals[:n_evals] if exact else all_evals:
            self._admit(rec)
        for rec in all_evals[n_evals:] if exact else ():
            self._replay[self.space.parse(rec["arch"])] = rec
        return self

    def _admit(self, rec: dict) -> None:
        arch = self.space.parse(rec["arch"])
        self.cache[arch] = rec
        self.log.append(rec)
        if self.best is None or rec["reward"] > self.best["reward"]:
            self.best = rec
        self.trajectory.append(self.best["reward"])

    def _checkpoint(self) -> None:
        self._last_checkpoint = time.perf_counter()
        self.run_dir.save_checkpoint({
            "strategy": self.strategy.state_dict(), "evaluations": len(self.log),
            "proposals": self.proposals, "updates": self.updates, "elapsed": self._elapsed(),
            "rng": rng_states(),
        }, "search")

    # -- the loop ---------------------------------------------------------------------------
    def _elapsed(self) -> float:
        return self.elapsed + time.perf_counter() - self._t0

    def _record(self, arch: Architecture, ev, proposal: int) -> dict:
        rec = {"query": len(self.log) + 1, "arch": str(arch), "reward": float(ev.reward),
               "metrics": ev.metrics, "time_s": round(ev.seconds, 6), "elapsed_s": round(self._elapsed(), 3),
               "proposal": proposal}
        if self.run_dir is not None:
            self.run_dir.append_jsonl(RunDir.EVALS, rec)
        return rec

    def _launch(self, batch: list[Architecture], version: int) -> "_Flight":
        """The prefix of ``batch`` that fits the budget (counting the children in flight; all of it
        with ``finish="cancel"``), its new architectures sent to the executor (or taken from the
        log on a resume)."""
        flight = _Flight(version)
        distinct = len(self.log) + len(self._inflight)
        for arch in batch:
            fresh = arch not in self.cache and arch not in self._inflight
            if fresh and distinct >= self.budget and self.finish == "drain":
                break
            flight.archs.append(arch)
            if fresh:
                distinct += 1
                rec = self._replay.pop(arch, None)
                self._inflight[arch] = rec if rec is not None else self.executor.submit(self.evaluator, arch)
        self._planned += len(flight.archs)
        return flight

    def _advance(self, flight: "_Flight") -> bool:
        """Log what ``flight`` can log in its batch's order; whether all of it is known."""
        while flight.next < len(flight.archs):
            arch = flight.archs[flight.next]
            if arch not in self.cache:
                if len(self.log) >= self.budget:
                    return False                   # finish="cancel": the budget is logged
                job = self._inflight.get(arch)
                if not isinstance(job, dict) and (job is None or not job.done):
                    return False                   # still training (here or for another replica)
                del self._inflight[arch]
                rec = job if isinstance(job, dict) else self._record(arch, job.evaluation, self.proposals + 1)
                improved = self.best is None or rec["reward"] > self.best["reward"]
                self._admit(rec)
                if improved and self.run_dir is not None:
                    self.run_dir.write_json(RunDir.BEST, self.best)
                if self.on_evaluation is not None:
                    self.on_evaluation(rec)
            self.proposals += 1
            self._planned -= 1
            flight.rewards.append(self.cache[arch]["reward"])
            flight.next += 1
        return True

    def _tell(self, flight: "_Flight") -> None:
        stats = self.strategy.tell(flight.archs, flight.rewards, flight.version)
        self.updates += 1
        if self.on_update is not None:
            self.on_update(stats)
        if self.run_dir is not None:   # one line per update, so the checkpoint's count cuts the log right
            self.run_dir.append_jsonl(RunDir.STEPS, {"update": self.updates, "queries": len(self.log),
                                                     "proposals": self.proposals, **(stats or {})})
            if time.perf_counter() - self._last_checkpoint >= self.checkpoint_every:
                self._checkpoint()

    def _room(self, flights: list["_Flight"]) -> bool:
        """Whether another batch may be asked. Synchronous: when none is in flight. Asynchronous:
        the first K batches, then more while fewer than K × m children train (m the batch size),
        up to K × (m + ``FLIGHTS_PER_REPLICA``) batches. A batch's cached children, and those
        another replica is training, hold no worker, and a batch whose fast children are done
        holds only its slowest one's: waiting on them would leave workers idle. At most K × m
        batches hold a training child, so the bound leaves 4 K for batches that hold none (a
        policy that asks only what is training cannot grow the flights without end)."""
        if self.replicas == 1:
            return not flights
        if len(flights) < self.replicas:
            return True
        if len(flights) >= self.replicas * (self._batch + self.FLIGHTS_PER_REPLICA):
            return False
        training = sum(1 for j in self._inflight.values() if not isinstance(j, dict) and not j.done)
        return training < self.replicas * self._batch

    def run(self) -> SearchResult:
        self._t0 = time.perf_counter()
        stopped_early = False
        flights: list[_Flight] = []
        self._inflight, self._planned, self._batch = {}, 0, 1
        counted = self._inflight if self.finish == "drain" else {}      # children in flight count toward the budget
        cancelled = 0
        while True:
            told = [f for f in flights if self._advance(f)]       # what finished is logged and told first
            for f in told:
                flights.remove(f)
                self._tell(f)
            if self.finish == "cancel" and len(self.log) >= self.budget:     # the rest is not needed
                jobs = [j for j in self._inflight.values() if not isinstance(j, dict)]
                self.executor.cancel(jobs)
                cancelled, self._inflight, self._planned = len(jobs), {}, 0
                break
            asked = 0
            while self._room(flights) and len(self.log) + len(counted) < self.budget:
                if self.proposals + self._planned >= self.max_proposals:
                    stopped_early = True
                    break
                batch, version = self.strategy.ask_versioned()
                self._batch = max(self._batch, len(batch))
                flights.append(self._launch(batch, version))
                asked += 1
            if not flights:
                break
            if not told and not asked:
                self.executor.wait([j for j in self._inflight.values() if not isinstance(j, dict) and not j.done])
        if self.run_dir is not None:
            self._checkpoint()
        self.elapsed = self._elapsed()
        self._t0 = time.perf_counter()
        return SearchResult(self.best, self.log, self.trajectory, self.proposals, stopped_early, cancelled)


class _Flight:
    """One replica's batch in flight: the architectures taken, the rewards known so far (in
    order), and the strategy's version when it was asked."""

    def __init__(self, version: int):
        self.version, self.archs, self.rewards, self.next = version, [], [], 0
