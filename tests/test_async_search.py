"""Asynchronous search (issue 29, Zoph & Le §3.3): K controller replicas in flight on a simulated
cluster (the real search loop and strategies; only the executor and the clock are simulated)."""
import itertools
import random

import pytest

from torchnas.evaluators import FunctionEvaluator
from torchnas.evaluators.executors import Serial
from torchnas.evaluators.simulated import SimulatedPool
from torchnas.search import Search
from torchnas.spaces import NB201Space
from torchnas.strategies import make_strategy

from .conftest import NB201_CSV, SHARED, needs


def _reward(arch):
    return sum(arch.values) / 24


def _scripted(durations):
    """Durations in the order the children start (the pool asks when a worker takes a child)."""
    it = iter(durations)
    return lambda arch: next(it)


def test_utilisation_of_a_hand_checkable_schedule_synchronous_and_asynchronous():
    """2 workers. Synchronous, batches of 2 with durations 1 and 3: each batch takes 3 seconds
    and keeps the workers busy 4 of 6 worker-seconds, so 8 / 12 = 2/3 over two batches.
    Asynchronous, 2 replicas of one child (durations 1, 3, 1, 1 as they start): replica A's
    children run 0-1, 1-2, 2-3 on one worker while B's runs 0-3 on the other: 6 / 6 = 1."""
    space = NB201Space()
    sync = SimulatedPool(2, _scripted([1, 3, 1, 3]))
    Search(space, make_strategy("random", space, seed=0, batch_size=2), FunctionEvaluator(_reward), budget=4,
           executor=sync).run()
    assert (sync.now, sync.busy, sync.utilisation()) == (6.0, 8.0, pytest.approx(2 / 3))
    asyn = SimulatedPool(2, _scripted([1, 3, 1, 1]))
    res = Search(space, make_strategy("random", space, seed=0, batch_size=1), FunctionEvaluator(_reward), budget=4,
                 executor=asyn, replicas=2).run()
    assert (asyn.now, asyn.busy, asyn.utilisation()) == (3.0, 6.0, 1.0)
    assert (sync.last_start, sync.utilisation(sync.last_start)) == (3.0, pytest.approx(4 / 6))   # 0-3: 1 + 3 busy
    # logged as they finish: A's first (t=1) and second (t=2), then at t=3 B's (it started first)
    # and A's third
    assert [r["time_s"] for r in res.evaluations] == [1.0, 1.0, 3.0, 1.0]


@pytest.mark.parametrize("strategy, settings", [("reinforce", {"batch_size": 3}), ("random", {"batch_size": 2}),
                                                ("evolution", {"population_size": 5, "sample_size": 2})])
def test_an_asynchronous_search_logs_every_child_once_and_spends_the_budget_exactly(strategy, settings):
    space, rng = NB201Space(), random.Random(5)
    pool = SimulatedPool(6, lambda arch: rng.lognormvariate(0, 1))
    res = Search(space, make_strategy(strategy, space, seed=1, **settings), FunctionEvaluator(_reward),
                 budget=60, executor=pool, replicas=4).run()
    archs = [r["arch"] for r in res.evaluations]
    assert len(archs) == 60 == len(set(archs))
    assert [r["query"] for r in res.evaluations] == list(range(1, 61))
    assert res.best["reward"] == max(r["reward"] for r in res.evaluations)
    assert pool.started == 60                      # nothing trained twice, nothing left out


def test_stale_gradients_are_logged_and_the_replicas_keep_the_workers_busy(tmp_path):
    from torchnas.runs import RunDir
    space, rng = NB201Space(), random.Random(0)
    pool = SimulatedPool(8, lambda arch: rng.lognormvariate(0, 1))
    run = RunDir(tmp_path / "run").create({"kind": "search"})
    strategy = make_strategy("reinforce", space, seed=0, batch_size=2)
    Search(space, strategy, FunctionEvaluator(_reward), budget=80, executor=pool, replicas=4, run_dir=run).run()
    steps = run.records(RunDir.STEPS)
    staleness = [s["staleness"] for s in steps]
    assert len(steps) == strategy.version == 40 and max(staleness) >= 1 and min(staleness) == 0
    assert strategy._weights == {}                 # every held version released
    sync_rng = random.Random(0)
    sync = SimulatedPool(8, lambda arch: sync_rng.lognormvariate(0, 1))
    Search(space, make_strategy("reinforce", space, seed=0, batch_size=8), FunctionEvaluator(_reward), budget=80,
           executor=sync).run()
    assert pool.utilisation() > sync.utilisation()


def test_one_replica_on_the_simulator_gives_the_serial_log():
    """K = 1 is the synchronous search: the same children, rewards and order as in process."""
    space = NB201Space()

    def run(executor):
        s = make_strategy("reinforce", space, seed=3, batch_size=4)
        return [(r["arch"], r["reward"], r["proposal"]) for r in
                Search(space, s, FunctionEvaluator(_reward), budget=30, executor=executor).run().evaluations]
    counter = itertools.count()
    assert run(SimulatedPool(3, lambda arch: 1 + next(counter) % 5)) == run(Serial())


@needs(NB201_CSV, "NAS-Bench-201 table")
def test_bench_scale_runs_the_real_search_on_a_simulated_cluster_and_prints_json_lines(capsys, tmp_path):
    from torchnas import api
    from torchnas.cli import main
    from torchnas.scale import DurationModel, run_scale
    res = run_scale([4], children=24, m=2, replicas=None, seeds=[0], modes=["sync", "async"], finishes=("drain", "cancel"),
                    data_dir=SHARED, model=DurationModel(base_s=600, per_gflop_s=3600, sigma=0.5))
    sync, asyn, cancel = res["rows"]
    assert [r["finish"] for r in res["rows"]] == ["drain", "drain", "cancel"] and cancel["trained"] == 24
    assert cancel["cancelled"] >= 1 and cancel["utilisation"] < cancel["utilisation_busy"]
    assert sync["utilisation"] == sync["utilisation_busy"] and sync["cancelled"] == 0
    assert (sync["replicas"], sync["batch"], asyn["replicas"], asyn["batch"]) == (1, 4, 2, 2)
    assert sync["updates"] == 6 and asyn["updates"] == 12 and asyn["staleness_max"] >= 1
    for r in (sync, asyn):
        assert 0 < r["utilisation"] <= 1 and 40 < r["best_test_200ep"] <= 94.38
        assert r["common_hours"] == min(sync["hours"], asyn["hours"], cancel["hours"])
    assert main(["bench", "scale", "--modes", "fast", "--data-dir", str(SHARED)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "'fast' is not a mode" in err
    assert main(["bench", "scale", "--finish", "later", "--data-dir", str(SHARED)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "'later' is not a way to end; choose drain and/or cancel" in err
    with pytest.raises(Exception, match="--out"):
        api.bench_scale(workers=[2], children=4, out=tmp_path, data_dir=SHARED)      # a folder: refused first


class _Scripted:
    """A strategy that asks the given batches in order (then the last one again) and records
    every tell."""

    def __new__(cls, space, batches):
        from torchnas.strategies.base import Strategy

        class Scripted(Strategy):
            name = "scripted"

            def __init__(self):
                super().__init__(space)
                self.batches, self.told, self.asked, self.asked_by_tell = list(batches), [], 0, []

            def ask(self):
                self.asked += 1
                return list(self.batches.pop(0) if len(self.batches) > 1 else self.batches[0])

            def tell(self, archs, rewards, version=None):
                self.told.append([str(a) for a in archs])
                self.asked_by_tell.append(self.asked)
                return {}
        return Scripted()


def test_a_replica_waiting_on_another_replicas_child_leaves_its_worker_to_a_new_batch():
    """2 workers, K = 2 replicas of one child. Both replicas ask X (3 s); the second waits on the
    first's X and holds no worker, so a third batch is asked: Y (1 s), then Z (1 s) on the worker
    Y frees. Busy 3 + 1 + 1 of 2 × 3 worker-seconds; X's two batches are told when it ends."""
    space = NB201Space()
    x, y, z = (space.make((v,) * 6) for v in (1, 2, 3))
    seconds = {x: 3.0, y: 1.0, z: 1.0}
    strategy = _Scripted(space, [[x], [x], [y], [z]])
    pool = SimulatedPool(2, lambda arch: seconds[arch])
    res = Search(space, strategy, FunctionEvaluator(_reward), budget=3, executor=pool, replicas=2).run()
    assert (pool.now, pool.busy, pool.utilisation()) == (3.0, 5.0, pytest.approx(5 / 6))
    assert [r["arch"] for r in res.evaluations] == [str(y), str(z), str(x)]
    assert strategy.told == [[str(y)], [str(z)], [str(x)], [str(x)]]


def test_batches_in_flight_are_capped_at_k_times_m_plus_four():
    """A policy that asks only the child in flight: 2 replicas of one child may have
    2 × (1 + 4) = 10 batches in flight, no more; all are told when the child ends."""
    space = NB201Space()
    x = space.make((1,) * 6)
    strategy = _Scripted(space, [[x]])
    pool = SimulatedPool(2, lambda arch: 5.0)
    Search(space, strategy, FunctionEvaluator(_reward), budget=2, executor=pool, replicas=2, max_proposals=20).run()
    assert Search.FLIGHTS_PER_REPLICA == 4 and strategy.asked_by_tell[:10] == [10] * 10
    assert strategy.asked == 20 and pool.started == 1


def test_finish_cancel_logs_exactly_the_budget_and_counts_the_stopped_child_as_wasted():
    """2 workers, 2 replicas of one child, budget 2, durations 1, 3, 1 as children start.
    Drain: X (0-1) and Y (0-3) are the budget; the search waits for Y: busy 4 of 2 × 3.
    Cancel: X ends at 1 and its replica asks Z (1-2); at 2 the budget (X, Z) is logged and Y,
    2 seconds in, is stopped: busy 4 of 2 × 2, of which Y's 2 are wasted (useful 2 / 4)."""
    space = NB201Space()

    def run(finish):
        pool = SimulatedPool(2, _scripted([1, 3, 1]))
        res = Search(space, make_strategy("random", space, seed=0, batch_size=1), FunctionEvaluator(_reward),
                     budget=2, executor=pool, replicas=2, finish=finish).run()
        return pool, res
    drain, d = run("drain")
    assert (drain.now, drain.busy, drain.wasted, d.cancelled) == (3.0, 4.0, 0.0, 0)
    assert drain.useful_utilisation() == drain.utilisation() == pytest.approx(4 / 6)
    cancel, c = run("cancel")
    assert (cancel.now, cancel.busy, cancel.wasted, c.cancelled) == (2.0, 4.0, 2.0, 1)
    assert (cancel.utilisation(), cancel.useful_utilisation()) == (1.0, 0.5)
    assert [r["time_s"] for r in c.evaluations] == [1.0, 1.0] and len(c.evaluations) == 2
    assert c.evaluations[0]["arch"] == d.evaluations[0]["arch"] != c.evaluations[1]["arch"]
    with pytest.raises(ValueError, match="finish must be 'drain' or 'cancel', got 'soon'"):
        Search(space, make_strategy("random", space, seed=0), FunctionEvaluator(_reward), budget=2, finish="soon")


@pytest.mark.parametrize("strategy, settings", [("reinforce", {"batch_size": 3}), ("evolution", {"population_size": 5,
                                                                                                   "sample_size": 2})])
def test_finish_cancel_logs_every_child_once_and_the_budget_exactly(strategy, settings):
    space, rng = NB201Space(), random.Random(5)
    pool = SimulatedPool(6, lambda arch: rng.lognormvariate(0, 1))
    res = Search(space, make_strategy(strategy, space, seed=1, **settings), FunctionEvaluator(_reward),
                 budget=60, executor=pool, replicas=4, finish="cancel").run()
    archs = [r["arch"] for r in res.evaluations]
    assert len(archs) == 60 == len(set(archs)) and res.cancelled >= 1
    assert 60 < pool.started <= 60 + res.cancelled        # cancelled: started or still queued
    assert pool.idle == 6 and pool._events == [] and not pool._queue
    assert 0 < pool.useful_utilisation() < pool.utilisation() <= 1 + 1e-12


@needs(NB201_CSV, "NAS-Bench-201 table")
def test_a_cancelling_search_from_the_command_line_logs_its_budget_and_says_what_it_stopped(tmp_path, capsys):
    from torchnas.cli import main
    from torchnas.runs import RunDir
    code = main(["search", "--preset", "nb201", "--queries", "40", "--quiet", "--data-dir", str(SHARED),
                 "--out", str(tmp_path / "run"), "--set", "search.mode=async", "--set", "search.finish=cancel",
                 "--set", "search.replicas=4", "--set", "strategies.reinforce.batch_size=4"])
    out = capsys.readouterr().out
    assert code == 0 and len(RunDir(tmp_path / "run").records(RunDir.EVALS)) == 40
    stopped = [line for line in out.splitlines() if "more that were asked were dropped" in line]
    assert len(stopped) == 1 and stopped[0].startswith("40 architectures logged; ")


def test_bench_scale_on_zoph_and_les_space_counts_flops_and_scripts_the_reward(capsys):
    """A space the policy cannot exhaust (issue 29): nas-cnn's children timed by the FLOPs the space
    counts, rewarded by the scripted stand-in; no table, so no cell is judged. Presets the simulator
    cannot time are refused in one line before anything runs."""
    from torchnas.cli import main
    from torchnas.config import build_space, load_preset
    from torchnas.scale import DurationModel, ScriptedReward, SpaceFlops, run_scale
    space = build_space(load_preset("nas-cnn"))
    flops = SpaceFlops(space)
    cheap, dear = flops.extremes()
    assert flops(cheap) < flops(dear)
    reward = ScriptedReward(flops)
    assert reward(dear) == reward(dear) and reward(cheap) < reward(dear) < 1
    res = run_scale([4], children=24, m=2, replicas=None, seeds=[0], modes=["sync", "async"], finishes=("cancel",),
                    preset="nas-cnn", model=DurationModel(base_s=600, per_gflop_s=3600, sigma=0.5))
    sync, cancel = res["rows"]
    assert res["preset"] == "nas-cnn" and sync["trained"] == cancel["trained"] == 24
    assert sync["best_test_200ep"] is None and cancel["best_test_200ep_at_common_time"] is None
    assert 0 < sync["utilisation"] < cancel["utilisation_busy"] <= 1 + 1e-12
    for preset, what in (("enas-nb201-tiny", "the simulator needs"), ("nas-cnn-tiny", "trained on CIFAR-10"),
                         ("nope", "no such preset")):
        assert main(["bench", "scale", "--preset", preset]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"--preset {preset}" in err and what in err, err
