"""Worker processes that die (issue 13): a child whose worker is killed (SIGKILL, as the kernel's
out-of-memory killer does) is evaluated again, the restart is counted in its metrics, results
stay in order, and a child that kills every worker it gets ends in one clear error, not a hang."""
import os
import signal
from pathlib import Path

import pytest

from torchnas.evaluators.base import Evaluation, Evaluator
from torchnas.evaluators.executors import LocalPool, RayPool
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


def test_a_child_that_always_kills_its_worker_gets_reward_0_and_its_reason(tmp_path):
    archs = _archs(3)
    pool = LocalPool(workers=2, threads=1, retries=2)
    try:
        evs = list(pool.map(KillsItsWorker(tmp_path, {str(archs[0])}, always=True), archs))
        assert evs[0].reward == 0.0 and "its worker died 3 times" in evs[0].metrics["failed"]
        assert evs[0].metrics["worker_retries"] == 2             # started 3 times: 2 restarts
        assert [e.reward for e in evs[1:]] == [float(sum(a.values)) for a in archs[1:]]
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


# -- workers: auto (issue 14) ---------------------------------------------------------------------
def test_auto_workers_rule():
    """A process per core (at most one per child of a batch) below the FLOPs threshold; one
    process with every core's threads above it, for one child at a time, on one core, or when
    nothing trains on the CPU."""
    from torchnas.evaluators.executors import PROCESSES_BELOW_FLOPS as T, auto_workers
    assert auto_workers(2, 8, T / 10) == (2, 1)
    assert auto_workers(8, 3, T / 10) == (3, 2)          # 3 children at a time: 3 processes x 2 threads
    assert auto_workers(16, 8, T / 10) == (8, 2)
    assert auto_workers(2, 8, T) == (1, 2)
    assert auto_workers(2, 1, T / 10) == (1, 2)
    assert auto_workers(1, 8, T / 10) == (1, 1)
    assert auto_workers(4, 8, None) == (1, 4)


def test_child_trainer_step_flops_is_flops_per_image_times_batch():
    from torchnas.evaluators.trainer import ChildTrainer
    from torchnas.nn import count_flops
    from torchnas.spaces import NASCNNSpace
    space = NASCNNSpace(layers=3, num_filters=(4, 8))
    ev = ChildTrainer(space, {"name": "digits"}, epochs=1, batch_size=32, device="cpu")
    archs = [space.parse("nas-cnn:3,3,4,-,1,1,8,0,5,5,4,1"), space.parse("nas-cnn:1,1,8,-,3,3,8,0,3,3,8,0+1")]
    per_image = [count_flops(space.child(a, 1, 10), (1, 8, 8)) for a in archs]
    assert ev.step_flops(archs) == pytest.approx(32 * sum(per_image) / 2)
    from torchnas.evaluators.base import FunctionEvaluator
    assert FunctionEvaluator(lambda a: 0.0).step_flops([]) is None         # nothing trained: no sizing


def test_workers_auto_is_recorded_and_shown(tmp_path, capsys):
    """The main job's preset sizes its workers from the children (2 processes on the digits'
    tiny children of a 2-core machine), writes the numbers into the run's config, so that a
    resumed run keeps them, and names them in its header line."""
    from torchnas.cli import main
    from torchnas.evaluators.executors import auto_workers
    from torchnas.runs import RunDir
    cores = os.cpu_count() or 1
    assert main(["search", "--no-retrain", "--queries", "2", "--set", "evaluator.epochs=1",
                 "--out", str(tmp_path / "r")]) == 0
    ex = RunDir(tmp_path / "r").config()["executor"]
    assert (ex["workers"], ex["threads"]) == auto_workers(cores, 8, 1.0)      # small children
    assert f"workers {ex['workers']} x {ex['threads']} thread" in capsys.readouterr().out


def test_workers_auto_keeps_to_one_process_for_a_script_without_a_main_guard(tmp_path, monkeypatch):
    import sys
    import types
    from torchnas import api
    for text, safe in [("from torchnas import api\napi.search()\n", False),
                       ("def main():\n    pass\n\nif __name__ == '__main__':\n    main()\n", True)]:
        script = tmp_path / "job.py"
        script.write_text(text)
        module = types.ModuleType("__main__")
        module.__file__ = str(script)
        monkeypatch.setitem(sys.modules, "__main__", module)
        assert api._main_can_be_reimported() is safe
    monkeypatch.setitem(sys.modules, "__main__", types.ModuleType("__main__"))     # interactive: no file
    assert api._main_can_be_reimported() is True


@pytest.mark.parametrize("executor, pattern", [
    ({"workers": "auto", "threads": 2}, r"executor.threads goes with a number of workers"),
    ({"workers": "many"}, r"must be 'auto' or a whole number"),
    ({"workers": "auto", "backend": "ray", "threads": 1}, r"executor.threads goes with a number of workers"),
])
def test_bad_executor_settings(executor, pattern):
    from torchnas.config import ConfigError, check_executor
    with pytest.raises(ConfigError, match=pattern):
        check_executor({"executor": executor})


def test_workers_auto_with_ray_is_a_task_per_child():
    import types
    from torchnas import api
    executor = {"workers": "auto", "backend": "ray", "address": "auto"}
    sized = api._size_workers(executor, NB201Space(), types.SimpleNamespace(batch_size=6), None)
    assert sized == {"workers": 6, "threads": 1, "backend": "ray", "address": "auto"}


def test_a_ctrl_c_while_a_worker_starts_is_held_not_lost():
    """Issue 27: SIGINT was ignored while a submit started a worker, so a Ctrl-C that came then was
    lost and the search ran on. Now it is blocked for that moment and raised right after, and the
    started process begins with SIGINT blocked (quiet until its worker set-up ignores it)."""
    import multiprocessing
    import threading
    from torchnas.evaluators.executors import sigint_blocked_in_children
    ctx = multiprocessing.get_context("spawn")
    q = ctx.Queue()
    reached = []
    # a suite started in the background (nohup ... &) runs with SIGINT ignored; a terminal's
    # process has Python's handler, which is what this test is about
    old = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            with sigint_blocked_in_children():
                p = ctx.Process(target=_report_sigint_mask, args=(q,))
                p.start()
                signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)   # Ctrl-C mid-start
                reached.append("after the Ctrl-C, inside")        # held: not raised here
            reached.append("after the block")                    # raised as the block ends: not here
    finally:
        signal.signal(signal.SIGINT, old)
    assert reached == ["after the Ctrl-C, inside"]
    assert q.get(timeout=60) is True
    p.join(timeout=60)


def _report_sigint_mask(q):
    import signal
    q.put(signal.SIGINT in signal.pthread_sigmask(signal.SIG_BLOCK, []))


def test_a_dead_worker_reaped_by_the_pools_own_thread_is_still_the_culprit():
    """CI failure of 2026-12-07: ``concurrent.futures`` reaps a broken pool's processes on its own
    thread; a join that loses that race returns before the exit code is set (waitpid's ECHILD),
    the dead worker looked alive, no culprit was known, and every child in flight counted a
    restart. Here the exit codes arrive 0.1 s after the first join returns."""
    import threading
    from types import SimpleNamespace

    class Reaped:
        def __init__(self, code):
            self.exitcode, self.code, self.timer = None, code, None

        def join(self, timeout=None):
            if self.timer is None:
                self.timer = threading.Timer(0.1, setattr, (self, "exitcode", self.code))
                self.timer.start()

    pool = LocalPool(workers=2, threads=1)
    pool._pool = SimpleNamespace(_processes={11: Reaped(-signal.SIGKILL), 12: Reaped(-signal.SIGTERM)})
    pool._log = SimpleNamespace(stop=lambda: {11: "child-a", 12: "child-b"})
    assert pool._died() == {"child-a"}


class Sleeps(Evaluator):
    """Reward = the sum of the values, after ``seconds`` of sleep."""

    def __init__(self, seconds: float):
        self.seconds = seconds

    def evaluate(self, arch):
        import time
        time.sleep(self.seconds)
        return Evaluation(float(sum(arch.values)), {})


@pytest.mark.parametrize("backend", ["local", "ray"])
def test_cancelled_children_stop_with_their_workers_and_the_pool_goes_on(backend):
    """``finish: cancel`` (issue 29): children in flight that a search no longer needs are stopped
    at once, not trained to their end, and the pool takes new children afterwards."""
    import time
    if backend == "ray":
        require_module("ray")
    archs = _archs(3)
    pool = LocalPool(workers=2, threads=1) if backend == "local" else RayPool(workers=2, threads=1)
    try:
        slow = Sleeps(60.0)
        jobs = [pool.submit(slow, a) for a in archs]          # two start, one waits for a worker
        time.sleep(3.0)
        t0 = time.perf_counter()
        pool.cancel(jobs)
        if backend == "local":
            assert pool._pool is None and pool._jobs == {}      # the workers that trained them are stopped
        fast = Sleeps(0.0)
        evs = list(pool.map(fast, archs[:2]))
        assert time.perf_counter() - t0 < 30                  # not the 60 s the cancelled children needed
        assert [e.reward for e in evs] == [float(sum(a.values)) for a in archs[:2]]
    finally:
        pool.close()
