import pytest
import torch

from torchnas.evaluators import FunctionEvaluator
from torchnas.search import Search
from torchnas.spaces import NB201Space, ToySpace
from torchnas.strategies import STRATEGIES, Reinforce, make_strategy


@pytest.mark.slow
def test_reinforce_finds_the_one_rewarded_architecture():
    space = ToySpace(layers=2, options=3)              # 3 * 3 * 2 = 18 architectures
    target = space.parse("toy:op2,-,op1,0,0")
    strat = Reinforce(space, seed=0, batch_size=8, lr=0.05, baseline_decay=0.9)
    p0 = strat.controller.log_prob([target]).log_probs.exp().item()
    for _ in range(150):
        archs = strat.ask()
        strat.tell(archs, [1.0 if a == target else 0.0 for a in archs])
    with torch.no_grad():
        p = strat.controller.log_prob([target]).log_probs.exp().item()
    assert p0 < 0.1 and p > 0.9


def test_entropy_bonus_is_added_to_the_reward():
    """ENAS: reward += entropy_weight * stop_gradient(sample entropy)."""
    strat = Reinforce(NB201Space(), seed=0, batch_size=16, entropy_weight=0.01)
    archs = strat.ask()
    entropies = strat._pending.entropies.detach().clone()
    stats = strat.tell(archs, [0.5] * 16)
    assert stats["reward_with_bonus"] == pytest.approx(0.5 + 0.01 * entropies.mean().item(), rel=1e-5)
    assert stats["reward"] == pytest.approx(0.5)
    assert stats["entropy"] > 0


@pytest.mark.slow
def test_skip_penalty_pulls_skip_probability_to_target():
    space = ToySpace(layers=4, options=1)              # only skips are really decided
    strat = Reinforce(space, seed=0, batch_size=8, lr=0.01, skip_weight=1.0,
                      controller={"skip_target": 0.1})
    def skip_rate():
        with torch.no_grad():
            archs = strat.controller.sample(2000, torch.Generator().manual_seed(1)).archs
        return sum(len(a.values[-1]) for a in archs) / (3 * len(archs))
    before = skip_rate()
    for _ in range(100):
        archs = strat.ask()
        strat.tell(archs, [0.0] * len(archs))
    after = skip_rate()
    assert abs(after - 0.1) < 0.05 and abs(before - 0.1) > 0.1


def test_baseline_starts_at_first_batch_mean_then_moves():
    strat = Reinforce(NB201Space(), batch_size=4, baseline_decay=0.5)
    a = strat.ask()
    strat.tell(a, [0.2, 0.4, 0.6, 0.8])
    assert strat.baseline == pytest.approx(0.5)
    a = strat.ask()
    stats = strat.tell(a, [1.0] * 4)
    assert strat.baseline == pytest.approx(0.75) and stats["baseline"] == pytest.approx(0.75)


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_budget_is_never_exceeded_and_repeats_are_free(name):
    space = ToySpace(layers=2, options=2)              # 8 architectures
    calls = []
    ev = FunctionEvaluator(lambda a: calls.append(a) or len(str(a)) / 100)
    result = Search(space, make_strategy(name, space, seed=1), ev, budget=5).run()
    assert len(calls) == len(set(calls)) == len(result.evaluations) == 5
    assert result.trajectory == sorted(result.trajectory)
    assert result.best["reward"] == max(r["reward"] for r in result.evaluations)


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_state_dict_round_trip_continues_identically(name):
    space = NB201Space()
    reward = lambda a: (sum(a.values) % 7) / 7
    a = make_strategy(name, space, seed=3)
    for _ in range(12):
        x = a.ask()
        a.tell(x, [reward(v) for v in x])
    b = make_strategy(name, space, seed=99)
    b.load_state_dict(a.state_dict())
    for _ in range(5):
        xa, xb = a.ask(), b.ask()
        assert xa == xb
        a.tell(xa, [reward(v) for v in xa])
        b.tell(xb, [reward(v) for v in xb])


def test_collapsed_strategy_stops_at_max_proposals():
    space = ToySpace(layers=2, options=2)
    class Stuck(Reinforce):
        def ask(self):
            super().ask()
            return [space.parse("toy:op0,-,op0,0,-")] * 4
    result = Search(space, Stuck(space), FunctionEvaluator(lambda a: 1.0), budget=5, max_proposals=40).run()
    assert result.stopped_early and len(result.evaluations) == 1 and result.proposals == 40


def test_unknown_strategy_and_bad_option():
    with pytest.raises(ValueError, match="unknown strategy 'ppo'"):
        make_strategy("ppo", NB201Space())
    with pytest.raises(ValueError, match="strategy 'random'"):
        make_strategy("random", NB201Space(), lr=0.1)
    with pytest.raises(ValueError, match="batch_size"):
        make_strategy("reinforce", NB201Space(), batch_size=0)


def test_enas_style_per_sample_baseline():
    strat = Reinforce(NB201Space(), batch_size=2, baseline_decay=0.5, baseline_update="sample")
    a = strat.ask()
    strat.tell(a, [1.0, 0.0])              # b: 1.0 (first sample), then 0.5
    assert strat.baseline == pytest.approx(0.5)
    with pytest.raises(ValueError, match="baseline_update"):
        Reinforce(NB201Space(), baseline_update="sometimes")


def test_propose_does_not_learn():
    strat = Reinforce(NB201Space(), seed=1)
    before = {k: v.clone() for k, v in strat.controller.state_dict().items()}
    archs = strat.propose(5)
    assert len(archs) == 5 and strat._pending is None
    assert all(torch.equal(v, strat.controller.state_dict()[k]) for k, v in before.items())


# -- found by mutation testing (benchmarks/mutate.py; docs/testing.md) ----------------------------
def test_defaults_are_the_published_settings():
    """Reinforce: Adam lr 0.0006 (Zoph & Le §4.1); progressive depth from 6 layers, +2 every 1,600
    samples (§4.1). Regularized evolution: population 10, tournament 3 (NAS-Bench-201's REA)."""
    from torchnas.spaces import NASCNNSpace
    from torchnas.strategies import RandomSearch, RegularizedEvolution
    r = Reinforce(NASCNNSpace(layers=12), depth_schedule={"every": 5})
    assert r.optimizer.param_groups[0]["lr"] == 6e-4 and r.batch_size == 8 and r.baseline_decay == 0.95
    assert r.depth_schedule == {"start": 6, "step": 2, "every": 5}
    e = RegularizedEvolution(NB201Space())
    assert (e.population_size, e.sample_size) == (10, 3)
    assert RandomSearch(NB201Space()).batch_size == 1


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_the_seed_decides_and_the_default_seed_is_zero(name):
    space = NB201Space()
    first = lambda seed: [str(a) for a in make_strategy(name, space, **({} if seed is None else {"seed": seed})).ask()]
    assert first(None) == first(0) != first(5)


def test_progressive_depth_grows_every_every_samples_up_to_the_space():
    from torchnas.spaces import NASCNNSpace
    r = Reinforce(NASCNNSpace(layers=9), batch_size=2, depth_schedule={"start": 3, "step": 2, "every": 4})
    depths = []
    for _ in range(8):
        archs = r.ask()
        depths.append(len(archs[0].values) // len(NASCNNSpace(layers=1).decisions))
        stats = r.tell(archs, [0.5, 0.4])
        assert stats["layers"] == depths[-1]
    assert depths == [3, 3, 5, 5, 7, 7, 9, 9] and r.samples == 16 and r.depth() == 9
    with pytest.raises(ValueError, match="needs a space with a depth; 'nb201' has none"):
        Reinforce(NB201Space(), depth_schedule={"every": 4})


def test_tell_without_ask_rescores_and_matches_tell_after_ask():
    """``tell`` on architectures that did not come from the last ``ask`` (proposed, or after a
    restore) scores them afresh; the update is the same as after ``ask``."""
    space = ToySpace(layers=3, options=3)
    a, b = Reinforce(space, seed=2, batch_size=3, lr=0.05), Reinforce(space, seed=2, batch_size=3, lr=0.05)
    archs = a.ask()
    b.load_state_dict(a.state_dict())                 # b never asked: its tell must rescore
    sa, sb = a.tell(archs, [0.1, 0.9, 0.4]), b.tell(archs, [0.1, 0.9, 0.4])
    assert sa == pytest.approx(sb)
    assert all(torch.equal(x, y) for x, y in zip(a.controller.parameters(), b.controller.parameters()))
    assert b.tell(archs, [0.2, 0.2, 0.2])["loss"] == pytest.approx(a.tell(archs, [0.2, 0.2, 0.2])["loss"])


def test_bad_settings_name_themselves_and_the_edges_are_allowed():
    from torchnas.strategies import RandomSearch, RegularizedEvolution
    with pytest.raises(ValueError, match=r"population_size >= 1 and sample_size >= 1 \(got 0, 3\)"):
        RegularizedEvolution(NB201Space(), population_size=0)
    with pytest.raises(ValueError, match=r"\(got 10, 0\)"):
        RegularizedEvolution(NB201Space(), sample_size=0)
    with pytest.raises(ValueError, match="random batch_size must be >= 1, got 0"):
        RandomSearch(NB201Space(), batch_size=0)
    e = RegularizedEvolution(NB201Space(), population_size=1, sample_size=1)
    for _ in range(3):
        x = e.ask()
        e.tell(x, [0.5] * len(x))


def test_evolution_restores_a_population_of_a_non_default_space():
    space = ToySpace(layers=4, options=3)             # not the toy space's default settings
    a = make_strategy("evolution", space, seed=1, population_size=3, sample_size=2)
    for _ in range(5):
        x = a.ask()
        a.tell(x, [len(str(v)) / 50 for v in x])
    b = make_strategy("evolution", space, seed=7, population_size=3, sample_size=2)
    b.load_state_dict(a.state_dict())
    assert [(str(x), r) for x, r in b.population] == [(str(x), r) for x, r in a.population]
    assert all(x.search_space is space for x, _ in b.population) and a.ask() == b.ask()


def test_controller_log_prob_returns_the_scored_architectures_and_set_space_checks_heads():
    from torchnas.controller import Controller
    from torchnas.spaces import NASCNNSpace
    c = Controller(NASCNNSpace(layers=4), seed=0)
    archs = c.sample(3, torch.Generator().manual_seed(0)).archs
    assert c.log_prob(archs).archs == archs
    c.set_space(NASCNNSpace(layers=6))
    assert c.space.layers == 6 and len(c.steps) == len(NASCNNSpace(layers=6).steps)
    with pytest.raises(ValueError, match="do not fit space"):
        c.set_space(NB201Space())


def test_reinforce_passes_its_settings_on_and_checks_them():
    space = NB201Space()
    r = Reinforce(space, seed=5, adam_betas=(0.0, 0.9), adam_eps=1e-3, controller={"hidden_size": 8})
    group = r.optimizer.param_groups[0]
    assert group["betas"] == (0.0, 0.9) and group["eps"] == 1e-3 and r.controller.g_emb.shape == (1, 8)
    assert r.space is space and r.seed == 5 and r.skip_weight == 0.0
    from torchnas.controller import Controller
    same = Controller(space, seed=5, hidden_size=8)
    assert all(torch.equal(a, b) for a, b in zip(r.controller.parameters(), same.parameters()))
    d = Reinforce(space)
    assert d.optimizer.param_groups[0]["betas"] == (0.9, 0.999) and d.optimizer.param_groups[0]["eps"] == 1e-8
    Reinforce(space, baseline_decay=0.0)                                       # the edge is allowed
    with pytest.raises(ValueError, match=r"baseline_decay must be in \[0, 1\), got 1"):
        Reinforce(space, baseline_decay=1)
    with pytest.raises(ValueError, match="lr must be > 0, got 0"):
        Reinforce(space, lr=0)


def test_depth_schedule_defaults_and_limits():
    from torchnas.spaces import NASCNNSpace
    space = NASCNNSpace(layers=12)
    assert Reinforce(space, depth_schedule={"start": 4}).depth_schedule == {"start": 4, "step": 2, "every": 1600}
    Reinforce(space, depth_schedule={"start": 1, "step": 0, "every": 1})      # the edges are allowed
    for bad in ({"start": 0}, {"step": -1}, {"every": 0}):
        with pytest.raises(ValueError, match=r"needs start >= 1, step >= 0, every >= 1; got \{"):
            Reinforce(space, depth_schedule=bad)
    with pytest.raises(ValueError, match=r"takes start, step and every; got \['rate'\]"):
        Reinforce(space, depth_schedule={"rate": 2})


def test_tell_of_other_architectures_than_asked_scores_those():
    """After ask, a tell of different architectures must score them, not reuse the asked ones'."""
    space = ToySpace(layers=3, options=3)
    a, b = Reinforce(space, seed=2, batch_size=3, lr=0.05), Reinforce(space, seed=2, batch_size=3, lr=0.05)
    b.load_state_dict(a.state_dict())
    asked = a.ask()
    import random
    others = [space.random(random.Random(k)) for k in range(3)]
    assert others != asked
    sa, sb = a.tell(others, [0.1, 0.9, 0.4]), b.tell(others, [0.1, 0.9, 0.4])
    assert sa["log_prob"] == pytest.approx(sb["log_prob"])
    assert all(torch.equal(x, y) for x, y in zip(a.controller.parameters(), b.controller.parameters()))


def test_restoring_keeps_the_baseline():
    space = NB201Space()
    a = Reinforce(space, batch_size=2)
    a.tell(a.ask(), [0.3, 0.5])
    b = Reinforce(space, seed=9, batch_size=2)
    b.load_state_dict(a.state_dict())
    assert b.baseline == a.baseline is not None
