"""The search loop: ask the strategy, evaluate what is new, tell the strategy, checkpoint.

The budget counts *distinct* evaluated architectures; a repeat is answered from the cache
and costs nothing (the strategy still learns from it). A strategy that keeps proposing
architectures it has already seen stops the search after ``max_proposals`` proposals
(default ``10 × budget``) so that a collapsed policy cannot loop forever.

Resumption is exact: the checkpoint is written after a ``tell`` (at most every
``checkpoint_every`` seconds, and at the end) and records how many log lines it covers. On resume the strategy is restored and asks its interrupted batch again;
evaluations logged after the checkpoint are taken from the log instead of being recomputed,
so a run stopped at any point and resumed writes the same evaluation log as one that never
stopped.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable


from .evaluators import Evaluator
from .evaluators.executors import Executor, Serial
from .runs import RunDir, RunError, rng_states, set_rng_states
from .spaces import Architecture, SearchSpace
from .strategies import Strategy


@dataclass
class SearchResult:
    best: dict | None
    evaluations: list[dict]
    trajectory: list[float] = field(default_factory=list)   # best reward after each new query
    proposals: int = 0
    stopped_early: bool = False


class Search:
    def __init__(self, space: SearchSpace, strategy: Strategy, evaluator: Evaluator, budget: int,
                 run_dir: RunDir | None = None, max_proposals: int | None = None,
                 on_evaluation: Callable[[dict], None] | None = None, checkpoint_every: float = 5.0,
                 executor: Executor | None = None):
        if budget < 1:
            raise ValueError(f"budget must be >= 1 distinct architectures, got {budget}")
        self.space, self.strategy, self.evaluator = space, strategy, evaluator
        self.budget = budget
        self.max_proposals = max_proposals or 10 * budget
        self.run_dir = run_dir
        self.checkpoint_every = checkpoint_every
        self.executor = executor or Serial()
        self._last_checkpoint = -float("inf")
        self.on_evaluation = on_evaluation
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
        ckpt = self.run_dir.load_checkpoint()
        n_evals = n_updates = 0
        if ckpt is not None:
            n_evals, n_updates = ckpt["evaluations"], ckpt["updates"]
        all_evals = self.run_dir.restore({RunDir.EVALS: n_evals, RunDir.STEPS: n_updates}, replay=(RunDir.EVALS,))[RunDir.EVALS]
        if ckpt is not None:
            self.strategy.load_state_dict(ckpt["strategy"])
            self.proposals, self.updates, self.elapsed = ckpt["proposals"], ckpt["updates"], ckpt["elapsed"]
            set_rng_states(ckpt["rng"])
        for rec in all_evals[:n_evals]:
            self._admit(rec)
        for rec in all_evals[n_evals:]:
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
        })

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

    def _evaluate_batch(self, batch: list[Architecture]) -> tuple[list[Architecture], list[float]]:
        """Rewards for the prefix of ``batch`` that fits the budget. New architectures go to
        the executor together (in parallel where it can) and are logged in batch order."""
        taken, todo, new = [], [], set()
        distinct = len(self.log)
        for arch in batch:
            fresh = arch not in self.cache and arch not in new
            if fresh and distinct >= self.budget:
                break
            taken.append(arch)
            if fresh:
                new.add(arch)
                distinct += 1
                if arch not in self._replay:
                    todo.append(arch)
        results = iter(self.executor.map(self.evaluator, todo))
        rewards = []
        for arch in taken:
            self.proposals += 1
            if arch not in self.cache:
                rec = self._replay.pop(arch, None) or self._record(arch, next(results), self.proposals)
                improved = self.best is None or rec["reward"] > self.best["reward"]
                self._admit(rec)
                if improved and self.run_dir is not None:
                    self.run_dir.write_json(RunDir.BEST, self.best)
                if self.on_evaluation is not None:
                    self.on_evaluation(rec)
            rewards.append(self.cache[arch]["reward"])
        return taken, rewards

    def run(self) -> SearchResult:
        self._t0 = time.perf_counter()
        stopped_early = False
        while len(self.log) < self.budget:
            if self.proposals >= self.max_proposals:
                stopped_early = True
                break
            archs, rewards = self._evaluate_batch(self.strategy.ask())
            stats = self.strategy.tell(archs, rewards)
            self.updates += 1
            if self.run_dir is not None:   # one line per update, so the checkpoint's count cuts the log right
                self.run_dir.append_jsonl(RunDir.STEPS, {"update": self.updates, "queries": len(self.log),
                                                         "proposals": self.proposals, **(stats or {})})
                if time.perf_counter() - self._last_checkpoint >= self.checkpoint_every:
                    self._checkpoint()
        if self.run_dir is not None:
            self._checkpoint()
        self.elapsed = self._elapsed()
        self._t0 = time.perf_counter()
        return SearchResult(self.best, self.log, self.trajectory, self.proposals, stopped_early)
