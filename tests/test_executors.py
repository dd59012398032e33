"""Worker processes that die (issue 13): a child whose worker is killed (SIGKILL, as the kernel's
out-of-memory killer does) is evaluated again, the restart is counted in its metrics, results
stay in order, and a child that kills every worker it gets ends in one clear error, not a hang."""
import os
import signal
from pathlib import Path

import pytest

from torchnas.evaluators.base import Evaluation, Evaluator
from torchnas.evaluators.executors import LocalPool, RayPool, WorkerDied
from torchnas.spaces import NB201Space

from .conftest import require_module


class KillsItsWorker(Evaluator):
    """Reward = the sum of the values; the first evaluation of each arch in ``victims`` (all of
    them, if ``always``) SIGKILLs its own worker process. Markers in ``folder`` remember kills
    across processes."""

    def __init__(self, folder: Path, victims: set[str], always: bool = False):
        self.folder, self.victims, self.always = Path(folder), set(victims), always

    def evaluate(self, arch):
        key = str(arch)
        if key in self.victims:
            marker = self.folder / key.replace(":", "_").replace(",", "_")
            if self.always or not marker.exists():
                marker.touch()
                os.kill(os.getpid(), signal.SIGKILL)
        return Evaluation(float(sum(arch.values)), {"n": len(arch.values)})


def _archs(n=6):
    space = NB201Space()
    import random
    rng = random.Random(0)
    return [space.random(rng) for _ in range(n)]


@pytest.mark.parametrize("backend", ["local", "ray"])
def test_a_dead_worker_is_restarted_and_counted(backend, tmp_path):
    if backend == "ray":
        require_module("ray")
    archs = _archs()
    victims = {str(archs[1]), str(archs[4])}
    pool = LocalPool(workers=2, threads=1) if backend == "local" else RayPool(workers=2, threads=1)
    try:
        evs = list(pool.map(KillsItsWorker(tmp_path, victims), archs))
    finally:
        pool.close()
    assert [e.reward for e in evs] == [float(sum(a.values)) for a in archs]
    assert [e.metrics.get("worker_retries", 0) for e in evs] == [int(str(a) in victims) for a in archs]


def test_local_pool_gives_up_on_a_child_that_always_kills_its_worker(tmp_path):
    archs = _archs(3)
    pool = LocalPool(workers=2, threads=1, retries=2)
    try:
        with pytest.raises(WorkerDied, match=rf"evaluating {archs[0]} died 3 times"):
            list(pool.map(KillsItsWorker(tmp_path, {str(archs[0])}, always=True), archs))
    finally:
        pool.close()


def test_a_long_run_of_children_never_fills_the_workers_channel(tmp_path):
    """Review finding: the "I start child K" messages filled their pipe after ~1,700 children
    when nobody read them, and every worker blocked for good."""
    import random
    space, rng = NB201Space(), random.Random(1)
    archs = [space.random(rng) for _ in range(3000)]
    pool = LocalPool(workers=2, threads=1)
    try:
        evs = list(pool.map(KillsItsWorker(tmp_path, set()), archs))
    finally:
        pool.close()
    assert [e.reward for e in evs] == [float(sum(a.values)) for a in archs]


def test_a_worker_that_dies_while_the_pool_is_idle_costs_nothing(tmp_path):
    archs = _archs(4)
    pool = LocalPool(workers=2, threads=1)
    try:
        evaluator = KillsItsWorker(tmp_path, set())
        first = list(pool.map(evaluator, archs[:2]))
        os.kill(next(iter(pool._pool._processes)), signal.SIGKILL)      # an idle worker dies
        import time
        time.sleep(0.5)
        evs = list(pool.map(evaluator, archs))
    finally:
        pool.close()
    assert [e.reward for e in first + evs] == [float(sum(a.values)) for a in archs[:2] + archs]
    assert not any("worker_retries" in e.metrics for e in evs)
