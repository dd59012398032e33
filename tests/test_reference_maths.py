"""Reference tests: each expectation is computed here by hand (explicit formulas,
torch.distributions, token-by-token loops, scripted inputs), never by the function under test.

They exist to catch a wrong algorithm that still runs and still "learns" (issue 11);
``benchmarks/mutations.py`` re-applies the mutations they were written against and checks
that every one of them fails here.
"""
from __future__ import annotations

import copy
import math
import os
import random
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch.distributions import Bernoulli, Categorical

import torchnas
import torchnas.controller as controller_mod
from torchnas.controller import Controller
from torchnas.enas import ENASSearch
from torchnas.evaluators.trainer import ChildTrainer
from torchnas.training import Training, perplexity
from torchnas.nn.ops import SepConv
from torchnas.spaces import Choice, get_space
from torchnas.spaces.enas_rnn import ENAS_RNN_ACTIVATIONS, ENASRNNCell
from torchnas.strategies import Reinforce
from torchnas.strategies.evolution import RegularizedEvolution

pytestmark = pytest.mark.usefixtures("one_thread")

TINY_IMAGES = dict(data={"name": "digits", "per_class": 20}, epochs=1, batch_size=16, train_steps=0,
                   derive_samples=1, keep=1, grad_clip=None)


if os.environ.get("TORCHNAS_EXPECT_SRC"):      # only under benchmarks/mutations.py: no skip elsewhere
    def test_torchnas_is_imported_from_the_expected_tree():
        """benchmarks/mutations.py sets TORCHNAS_EXPECT_SRC to its mutated copy's src/."""
        assert Path(torchnas.__file__).resolve().is_relative_to(Path(os.environ["TORCHNAS_EXPECT_SRC"]).resolve())


# -- REINFORCE (reinforce.py) ------------------------------------------------------------------
REWARDS = ([0.2, 0.9, 0.5, 0.1], [0.7, 0.3, 0.6, 0.8])


def _hand_reinforce(strategy_kw, batches=REWARDS):
    """Run Reinforce.tell on two batches and, for each, the loss and gradient of

        loss = -1/k Σ_k log P(a_k) (R_k + w·H_k − b_k)

    with the baseline b_k tracked here in plain floats (batch: b = previous average, started at
    the first batch's mean; sample: b moved by each sample before it is used)."""
    torch.manual_seed(0)
    space = get_space("toy", layers=3, options=3)
    s = Reinforce(space, seed=3, **strategy_kw)
    w, decay = s.entropy_weight, s.baseline_decay
    mode = s.baseline_update
    b = None
    for rewards in batches:
        archs = s.ask()
        ref = copy.deepcopy(s.controller)              # the controller the loss is formed with
        scored = ref.log_prob(archs)
        lp, ent = scored.log_probs, scored.entropies.detach()
        R = [r + w * e for r, e in zip(rewards, ent.tolist())]   # the reward with the entropy bonus
        if mode == "sample":
            adv = []
            for r in R:
                b = r if b is None else decay * b + (1 - decay) * r
                adv.append(r - b)
        else:
            if b is None:
                b = sum(R) / len(R)
            adv = [r - b for r in R]
            b = decay * b + (1 - decay) * sum(R) / len(R)
        loss = -(lp * torch.tensor(adv)).sum() / len(archs)
        if s.skip_weight:                              # + w_skip · mean_k KL(p_k ‖ target), added as is
            loss = loss + s.skip_weight * scored.skip_penalties.mean()
        grads = torch.autograd.grad(loss, list(ref.parameters()), allow_unused=True)
        grads = [torch.zeros_like(p) if g is None else g for g, p in zip(grads, ref.parameters())]
        stats = s.tell(archs, rewards)
        yield s, stats, loss.item(), grads, b


def _flat(ts):
    return torch.cat([t.reshape(-1) for t in ts])


@pytest.mark.parametrize("mode", ["batch", "sample"])
@pytest.mark.parametrize("entropy_weight, skip_weight", [(0.0, 0.0), (0.5, 0.0), (0.0, 0.7)])
def test_reinforce_loss_and_gradient_by_hand(mode, entropy_weight, skip_weight):
    kw = dict(batch_size=4, baseline_update=mode, entropy_weight=entropy_weight, skip_weight=skip_weight,
              baseline_decay=0.8, lr=0.05)
    for s, stats, loss, grads, b in _hand_reinforce(kw):
        assert stats["skip_penalty"] > 0 and "grad_norm" not in stats      # the toy space has skip sets
        got = _flat([torch.zeros_like(p) if p.grad is None else p.grad for p in s.controller.parameters()])
        want = _flat(grads)
        assert want.abs().max() > 1e-4          # the test has something to compare
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)
        assert stats["loss"] == pytest.approx(loss, rel=1e-4, abs=1e-5)
        assert stats["baseline"] == pytest.approx(b, rel=1e-6)


def test_asynchronous_reinforce_uses_the_sampling_weights_and_updates_the_current_ones():
    """Zoph & Le §3.3, two replicas: A and B both sample at version 0; A is told first (version
    0 -> 1), then B, whose gradient is (1) under the version-0 weights θ0 (not θ1), with the
    learner's baseline after A, applied to θ1 by the one optimizer (SGD here, so the update is
    θ2 = θ1 − lr·g_B by hand)."""
    torch.manual_seed(0)
    space = get_space("toy", layers=3, options=3)
    s = Reinforce(space, seed=3, batch_size=3, lr=0.5, baseline_decay=0.8)
    s.optimizer = torch.optim.SGD(s.controller.parameters(), lr=0.5)       # an update checkable by hand
    a, va = s.ask_versioned()
    b, vb = s.ask_versioned()
    assert va == vb == 0 and a != b
    theta0 = copy.deepcopy(s.controller)
    ra, rb = [0.2, 0.9, 0.5], [0.7, 0.1, 0.6]
    s.tell(a, ra, version=va)
    assert s.version == 1
    theta1 = copy.deepcopy(s.controller)
    baseline = s.baseline                         # the learner's, after A: 0.8·mean(A) + 0.2·mean(A)
    assert baseline == pytest.approx(sum(ra) / 3)
    lp = theta0.log_prob(b).log_probs
    loss = -(lp * torch.tensor([r - baseline for r in rb])).sum() / 3
    g_b = torch.autograd.grad(loss, list(theta0.parameters()), allow_unused=True)
    stats = s.tell(b, rb, version=vb)
    assert stats["staleness"] == 1 and s.version == 2
    assert stats["loss"] == pytest.approx(loss.item(), rel=1e-5)
    assert s.baseline == pytest.approx(0.8 * baseline + 0.2 * sum(rb) / 3)
    moved = 0.0
    for p1, p2, g in zip(theta1.parameters(), s.controller.parameters(), g_b):
        want = p1.detach() if g is None else p1.detach() - 0.5 * g
        torch.testing.assert_close(p2.detach(), want)
        moved += 0.0 if g is None else g.abs().sum().item()
    assert moved > 1e-3                            # the test has something to compare
    lp1 = theta1.log_prob(b).log_probs            # under the current weights the gradient differs
    g_now = torch.autograd.grad(-(lp1 * torch.tensor([r - baseline for r in rb])).sum() / 3,
                                list(theta1.parameters()), allow_unused=True)
    assert any(g is not None and not torch.allclose(g, h) for g, h in zip(g_b, g_now))
    assert s._weights == {}                       # both versions' weights released


def test_a_gradient_staler_than_the_bound_is_dropped_and_counted():
    space = get_space("toy", layers=2, options=3)
    s = Reinforce(space, seed=0, batch_size=2, max_staleness=1)
    batches = [s.ask_versioned() for _ in range(3)]            # all at version 0
    before = [p.detach().clone() for p in s.controller.parameters()]
    assert s.tell(*batches[0][:1], [0.1, 0.2], version=0)["staleness"] == 0
    assert s.tell(batches[1][0], [0.3, 0.4], version=0)["staleness"] == 1
    after = [p.detach().clone() for p in s.controller.parameters()]
    stats = s.tell(batches[2][0], [0.5, 0.6], version=0)          # two versions old: dropped
    assert stats == {"staleness": 2, "dropped": 1, "reward": pytest.approx(0.55)}
    assert s.version == 2 and s.dropped == 1 and s._weights == {}
    assert all(torch.equal(p.detach(), q) for p, q in zip(s.controller.parameters(), after))
    assert not all(torch.equal(p, q) for p, q in zip(before, after))


def test_skip_penalty_is_the_bernoulli_kl_per_sample():
    """ENAS general_controller.py: KL(p ‖ target) summed over one decision's anchors, per sample."""
    from torch.distributions import Bernoulli, kl_divergence
    from torchnas.controller import _bernoulli
    logits = torch.tensor([[0.3, -1.2, 2.0], [-0.5, 0.1, 0.0]])
    chosen = torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0]])
    _, lp, ent, kl = _bernoulli(logits, chosen, None, 0.4)
    p = torch.sigmoid(logits)
    torch.testing.assert_close(kl, kl_divergence(Bernoulli(p), Bernoulli(torch.full_like(p, 0.4))).sum(1))
    torch.testing.assert_close(ent, Bernoulli(p).entropy().sum(1))
    torch.testing.assert_close(lp, Bernoulli(p).log_prob(chosen).sum(1))


def test_reinforce_gradient_clipping_by_hand():
    clip = 1e-3
    kw = dict(batch_size=4, baseline_update="batch", entropy_weight=0.5, baseline_decay=0.8, grad_clip=clip)
    for s, stats, _, grads, _ in _hand_reinforce(kw):
        want = _flat(grads)
        norm = want.norm().item()
        assert norm > 10 * clip
        got = _flat([torch.zeros_like(p) if p.grad is None else p.grad for p in s.controller.parameters()])
        torch.testing.assert_close(got, want * clip / (norm + 1e-6), rtol=1e-4, atol=1e-9)
        assert stats["grad_norm"] == pytest.approx(norm, rel=1e-4)


def test_reinforce_one_sample_sign_of_update():
    """One architecture, reward above the baseline: its probability must go up; below: down."""
    space = get_space("toy", layers=2, options=3)
    for reward, up in ((1.0, True), (0.0, False)):
        s = Reinforce(space, seed=0, batch_size=1, lr=1e-3, baseline_decay=0.5)
        s.baseline = 0.5
        arch = s.ask()[0]
        before = s.controller.log_prob([arch]).log_probs.item()
        s.tell([arch], [reward])
        after = s.controller.log_prob([arch]).log_probs.item()
        assert (after > before) == up


# -- the controller's distributions (controller.py) ---------------------------------------------
def test_controller_entropy_and_log_prob_one_choice_by_hand():
    """One softmax decision: logits = C·tanh(w_soft(h) / T), h = LSTMCell(g_emb, 0)."""
    space = get_space("toy", layers=1, options=4)      # layer0.op, then an AnchorSet over no anchors
    c = Controller(space, hidden_size=8, temperature=2.0, tanh_constant=1.5, init_range=0.5, seed=1)
    smp = c.sample(6, torch.Generator().manual_seed(0))
    with torch.no_grad():
        h, _ = c.lstm[0](c.g_emb)
        dist = Categorical(logits=1.5 * torch.tanh(c.w_soft["op"](h)[0] / 2.0))
        ops = torch.tensor([a.values[0] for a in smp.archs])
        torch.testing.assert_close(smp.entropies.detach(), dist.entropy().expand(6), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(smp.log_probs.detach(), dist.log_prob(ops), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("space_kw", [dict(name="toy", layers=3, options=3),
                                      dict(name="enas-macro", num_layers=3),
                                      dict(name="enas-rnn", num_nodes=3)])
def test_controller_entropy_is_the_categorical_entropy(monkeypatch, space_kw):
    """Every step's logits recorded on the way into the sampler; the summed entropies and
    log-probabilities must be torch.distributions' for those logits and the sampled values."""
    kw = dict(space_kw)
    space = get_space(kw.pop("name"), **kw)
    seen = []
    real_cat, real_bern = controller_mod._categorical, controller_mod._bernoulli

    def cat(logits, chosen, generator, *stats):
        out = real_cat(logits, chosen, generator, *stats)
        seen.append(("cat", logits.detach().clone(), out[0]))
        return out

    def bern(logits, chosen, generator, target, *stats):
        out = real_bern(logits, chosen, generator, target, *stats)
        seen.append(("bern", logits.detach().clone(), out[0]))
        return out
    monkeypatch.setattr(controller_mod, "_categorical", cat)
    monkeypatch.setattr(controller_mod, "_bernoulli", bern)
    c = Controller(space, hidden_size=8, init_range=0.8, seed=2)
    m = 5
    smp = c.sample(m, torch.Generator().manual_seed(1))
    ent, lp = torch.zeros(m), torch.zeros(m)
    for kind, logits, chosen in seen:
        if kind == "cat":
            d = Categorical(logits=logits)
            ent, lp = ent + d.entropy(), lp + d.log_prob(chosen)
        else:
            d = Bernoulli(logits=logits)
            ent, lp = ent + d.entropy().sum(1), lp + d.log_prob(chosen).sum(1)
    assert any(k == "cat" for k, _, _ in seen)
    torch.testing.assert_close(smp.entropies.detach(), ent, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(smp.log_probs.detach(), lp, rtol=1e-5, atol=1e-5)


def _controller_by_hand(c, space, archs):
    """Zoph & Le §3 / ENAS controllers written out for the toy chain (per layer: op, then from
    layer 1 on one input and a skip set over the earlier layers) from the controller's modules
    alone: the LSTM steps, the op softmax C/r·tanh((W_soft h + b_kind)/T) + bias, the anchor
    softmax over C·tanh(s_j/T) − β(n−j)², the skip sigmoids P(j feeds i) = σ(C·tanh(s_j/T)) with
    the set-selection attention s_j = vᵀ tanh(W_prev h_j + W_curr h_i), the next inputs (op
    embedding; chosen anchor / (offset + n − j); mean of the chosen skips with 1 + |S|), and the
    skip penalty, the mean over skip decisions of Σ_j KL(Bernoulli(p_j) ‖ Bernoulli(target))."""
    from torch.distributions import Bernoulli, Categorical, kl_divergence
    m, H = len(archs), c.g_emb.shape[1]
    T, C, r = c.temperature, c.tanh_constant, c.op_tanh_reduce
    squash = (lambda x, c_: x) if T is None and C is None else (lambda x, c_: c_ * torch.tanh(x / T))
    g = c.g_emb.expand(m, H)
    idx = {d.name: k for k, d in enumerate(space.decisions)}
    col = lambda name, dtype=torch.long: torch.tensor([a.values[idx[name]] for a in archs], dtype=dtype)
    state, inp = None, g
    anchors, keys, kls = [], [], []
    lp, ent = torch.zeros(m), torch.zeros(m)

    def step(x):
        nonlocal state
        state = c.lstm[0](x, state)
        return state[0]

    def attention(h, n):
        return torch.stack([c.v_attn(torch.tanh(keys[j] + c.w_attn_2(h))).squeeze(-1) for j in range(n)], 1)

    for i in range(space.layers):
        d = space.decisions[idx[f"layer{i}.op"]]
        h = step(inp)
        logits = squash(c.w_soft["op"](h) + c.choice_bias["op"], None if C is None else C / r)
        logits = logits + (torch.tensor(d.bias) if d.bias else 0.0)
        a = col(f"layer{i}.op")
        dist = Categorical(logits=logits)
        lp, ent = lp + dist.log_prob(a), ent + dist.entropy()
        inp = c.w_emb["op"](a)
        if i > 0:
            h = step(inp)
            dist_j = torch.arange(i, 0, -1, dtype=torch.float32)                   # n - j
            dist = Categorical(logits=squash(attention(h, i), C) - c.anchor_distance_bias * dist_j ** 2)
            a = col(f"layer{i}.input")
            lp, ent = lp + dist.log_prob(a), ent + dist.entropy()
            inp = torch.stack(anchors, 1)[torch.arange(m), a]
            if c.anchor_input_offset is not None:
                inp = inp / (c.anchor_input_offset + dist_j[a])[:, None]
        h = step(inp)
        inp = g
        if i > 0:
            bern = Bernoulli(torch.sigmoid(squash(attention(h, i), C)))
            bits = torch.zeros(m, i)
            for k, arch in enumerate(archs):
                bits[k, list(arch.values[idx[f"layer{i}.skips"]])] = 1.0
            lp, ent = lp + bern.log_prob(bits).sum(1), ent + bern.entropy().sum(1)
            kls.append(kl_divergence(bern, Bernoulli(torch.full_like(bern.probs, c.skip_target))).sum(1))
            inp = (bits[:, :, None] * torch.stack(anchors, 1)).sum(1) / (1 + bits.sum(1, keepdim=True))
        anchors.append(h)
        keys.append(c.w_attn_1(h))
    return lp, ent, sum(kls) / len(kls)


def _biased_toy():
    import dataclasses
    space = get_space("toy", layers=3, options=3)
    space.decisions = tuple(dataclasses.replace(d, bias=(0.5, -1.0, 0.2)) if isinstance(d, Choice) else d
                            for d in space.decisions)
    return space


# (space, controller settings): every squashing and bias option on; and none, where the skip
# probability is the paper's sigmoid(vᵀ tanh(W_prev h_j + W_curr h_i)) itself (Zoph & Le §3.3)
CONTROLLERS = {
    "squashed": (_biased_toy, dict(hidden_size=8, init_range=0.5, temperature=2.0, tanh_constant=1.5,
                                   op_tanh_reduce=2.5, choice_bias={"op": [0.3, 0.0, -0.4]},
                                   anchor_distance_bias=0.2, anchor_input_offset=0.5, skip_target=0.3, seed=4)),
    "paper": (lambda: get_space("toy", layers=3, options=2),
              dict(hidden_size=6, init_range=0.6, choice_bias={"op": [0.0, 0.0]}, seed=2)),
}


@pytest.mark.parametrize("setting", sorted(CONTROLLERS))
def test_controller_log_prob_entropy_and_skip_penalty_by_hand(setting):
    make_space, kw = CONTROLLERS[setting]
    space = make_space()
    c = Controller(space, **kw)
    archs = c.sample(5, torch.Generator().manual_seed(1)).archs
    assert len({a.values[-1] for a in archs}) > 1                  # skip sets differ across the batch
    got = c.log_prob(archs)
    with torch.no_grad():
        lp, ent, pen = _controller_by_hand(c, space, archs)
    torch.testing.assert_close(got.log_probs.detach(), lp)
    torch.testing.assert_close(got.entropies.detach(), ent)
    torch.testing.assert_close(got.skip_penalties.detach(), pen)


def test_macro_controller_next_input_averages_the_chosen_skip_anchors():
    """ENAS general_controller.py: after layer i's skips S, the next LSTM input is
    Σ_{j∈S} h_j / (1 + |S|), h_j the LSTM output at layer j's skip step."""
    space = get_space("enas-macro", num_layers=4)
    c = Controller(space, hidden_size=8, init_range=0.5, seed=0)
    calls = []
    c.lstm[0].register_forward_hook(lambda mod, args, out: calls.append((args[0].detach().clone(),
                                                                          out[0].detach().clone())))
    # layer ops, layer1 skips {0}, layer2 skips {0, 1}, layer3 skips {1, 2}
    values = []
    for i, (op, skips) in enumerate([(0, ()), (1, (0,)), (2, (0, 1)), (3, (1, 2))]):
        values += [op, skips]
    arch = space.make(values)
    c.log_prob([arch])
    assert len(calls) == 8                    # op and skip step per layer
    anchor = [calls[2 * i + 1][1] for i in range(4)]   # h at each layer's skip step
    inputs = [x for x, _ in calls]
    torch.testing.assert_close(inputs[0], c.g_emb.detach())
    torch.testing.assert_close(inputs[1], c.w_emb["op"].weight[0:1].detach())
    torch.testing.assert_close(inputs[2], c.g_emb.detach())       # layer 0 has no skip decision
    torch.testing.assert_close(inputs[4], anchor[0] / 2)
    torch.testing.assert_close(inputs[6], (anchor[0] + anchor[1]) / 3)
    # no skips chosen: a zero input
    arch0 = space.make([0, (), 1, (), 2, (), 3, ()])
    calls.clear()
    c.log_prob([arch0])
    torch.testing.assert_close(calls[4][0], torch.zeros(1, 8))


# -- ENAS shared phase and reward (enas.py) ------------------------------------------------------
@pytest.mark.parametrize("warmup", [0, 1])
def test_enas_shared_phase_samples_one_architecture_per_minibatch(warmup):
    space = get_space("enas-micro")
    s = ENASSearch(space, Reinforce(space, seed=1), seed=1, net={"channels": 4, "num_layers": 3},
                   warmup_epochs=warmup, **TINY_IMAGES)
    used = []
    s.net.register_forward_pre_hook(lambda mod, args: used.append(str(args[1])))
    s.train_shared_epoch()
    n_batches = math.ceil(len(s.shared.data.train_y) / s.shared.batch_size)
    assert n_batches >= 5 and len(used) == n_batches
    assert len(set(used)) >= n_batches - 1     # a fresh sample each minibatch (the space is huge)


def test_enas_uniform_shared_sampling_trains_uniform_cells_and_still_trains_the_controller():
    """``shared_sampling: uniform``: the shared phase draws cells uniformly (the policy is never
    asked), the controller phase still samples from the policy and updates it."""
    space = get_space("nb201")
    strategy = Reinforce(space, seed=1, lr=0.05)
    s = ENASSearch(space, strategy, seed=1, net={"channels": 4, "num_cells": 1}, shared_sampling="uniform",
                   **{**TINY_IMAGES, "train_steps": 2})
    asked = []
    strategy.propose = lambda n: asked.append(n) or []           # the shared phase must not ask the policy
    used = []
    s.net.register_forward_pre_hook(lambda mod, args: used.append(str(args[1])))
    s.train_shared_epoch()
    assert asked == [] and len(used) == math.ceil(len(s.shared.data.train_y) / s.shared.batch_size) and len(set(used)) > 1
    assert used == [str(a) for a in s.sampler()(len(used))]       # the epoch's seeded draw: a resume repeats it
    before = [p.detach().clone() for p in strategy.controller.parameters()]
    assert len(s.train_controller()) == 2
    assert any(not torch.equal(a, p) for a, p in zip(before, strategy.controller.parameters()))
    with pytest.raises(ValueError, match="shared_sampling"):
        ENASSearch(space, Reinforce(space), shared_sampling="fair", **TINY_IMAGES)


def test_enas_lm_shared_phase_samples_one_cell_per_window(tmp_path):
    rng = random.Random(0)
    words = [f"w{k}" for k in range(12)]
    for split, n in (("train", 400), ("valid", 80), ("test", 40)):
        lines = [" ".join(rng.choice(words) for _ in range(9)) for _ in range(n // 10)]
        (tmp_path / f"ptb.{split}.txt").write_text("\n".join(lines) + "\n")
    space = get_space("enas-rnn", num_nodes=4)
    s = ENASSearch(space, Reinforce(space, seed=0), data={"path": str(tmp_path)}, net={"hidden_size": 6},
                     epochs=1, batch_size=4, bptt=5, variable_bptt=False, train_steps=0, reward_batch=2,
                     derive_samples=1, keep=1, seed=0, device="cpu")
    used = []
    s.net.register_forward_pre_hook(lambda mod, args: used.append(str(args[2])))
    s.train_shared_epoch()
    assert len(used) >= 8
    assert len(set(used)) >= len(used) // 2      # 4-node cells: 4! * 4^4 = 6144 of them


def test_enas_reward_leaves_running_statistics_alone():
    space = get_space("enas-macro", num_layers=3)
    s = ENASSearch(space, Reinforce(space, seed=0), seed=0, net={"channels": 4}, **TINY_IMAGES)
    s.train_shared_epoch()                 # running statistics away from their init
    stats = {k: v.clone() for k, v in s.net.state_dict().items() if "running_" in k}
    assert stats
    moms = [m.momentum for m in s.net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    rng = random.Random(0)
    for _ in range(3):
        s.reward(space.random(rng), s.valid_batch())
    after = s.net.state_dict()
    for k, v in stats.items():
        assert torch.equal(after[k], v), k
    assert moms == [m.momentum for m in s.net.modules() if isinstance(m, torch.nn.BatchNorm2d)]


# -- regularized evolution (evolution.py) --------------------------------------------------------
def _population(space, rewards):
    s = RegularizedEvolution(space, seed=0, population_size=len(rewards), sample_size=2)
    archs = [space.make([op, (), op2, 0, (0,)]) for op, op2 in [(0, 0), (0, 1), (1, 0), (1, 1), (2, 2)]]
    for a, r in zip(archs, rewards):
        s.tell([a], [r])
    return s, archs


def test_evolution_removes_the_oldest():
    space = get_space("toy", layers=2, options=3)
    s, archs = _population(space, [0.9, 0.1, 0.5, 0.3])
    child = space.make([2, (), 2, 0, ()])
    s.tell([child], [0.2])
    assert [r for _, r in s.population] == [0.1, 0.5, 0.3, 0.2]      # the best, but oldest, is gone
    assert [a for a, _ in s.population] == archs[1:4] + [child]
    s.tell([child], [0.95])
    assert [r for _, r in s.population] == [0.5, 0.3, 0.2, 0.95]


def test_evolution_tournament_picks_the_best(monkeypatch):
    space = get_space("toy", layers=2, options=3)
    s, archs = _population(space, [0.9, 0.1, 0.5, 0.3])
    pop = list(s.population)
    script = iter([pop[1], pop[2]])                  # rewards 0.1 and 0.5
    monkeypatch.setattr(s.rng, "choice", lambda seq: next(script))
    parents = []
    monkeypatch.setattr(space, "mutate", lambda a, rng: parents.append(a) or a)
    s.ask()
    assert parents == [archs[2]]
    script = iter([pop[3], pop[1]])                  # 0.3 and 0.1, order reversed
    s.ask()
    assert parents[-1] == archs[3]


# -- the child reward (trainer.py) ----------------------------------------------------------------
@pytest.mark.parametrize("reward", ["acc3", "acc"])
def test_child_reward_is_best_of_last_five(monkeypatch, reward):
    script = [0.95, 0.2, 0.3, 0.8, 0.5, 0.6, 0.4, 0.45]    # epoch 1 is best but too early

    def train_epoch(self):
        self.epoch += 1
        self.step += 1
        return {"loss": 1.0, "images": 10, "seconds": 0.01, "lr": 0.1}
    monkeypatch.setattr(Training, "train_epoch", train_epoch)
    monkeypatch.setattr(Training, "accuracy", lambda self, split="valid", batch_size=500: script[self.epoch - 1])
    space = get_space("enas-macro", num_layers=2)
    ev = ChildTrainer(space, data={"name": "digits", "per_class": 20}, epochs=8, last_k=5, reward=reward)
    out = ev.evaluate(space.make([0, (), 1, (0,)]))
    best = max(script[-5:])
    assert out.reward == pytest.approx(best ** 3 if reward == "acc3" else best)
    assert out.metrics["valid_acc"] == pytest.approx(script[-1])


# -- exact perplexity (language.py) ---------------------------------------------------------------
def _lm(seed=0):
    torch.manual_seed(seed)
    space = get_space("enas-rnn", num_nodes=2)
    return space.language_model(space.make([0, 0, 1, 3]), 11, hidden_size=6, init_range=0.6)


def _token_by_token(model, tokens):
    """Σ −log p(tokens[t+1] | tokens[:t+1]) from a zero state, one token per call."""
    state, total = model.init_state(1), 0.0
    for t in range(len(tokens) - 1):
        out = model(tokens[t].view(1, 1), state)
        state = out.state
        total -= F.log_softmax(out.logits[0, 0], -1)[tokens[t + 1]].item()
    return total


@pytest.mark.parametrize("length", [25, 27, 28])   # tails of 0, 2 and 0 tokens for B = 3
def test_perplexity_batch_three_with_tail_against_a_token_loop(length):
    model = _lm()
    model.eval()
    stream = torch.randint(0, 11, (length,), generator=torch.Generator().manual_seed(length))
    B, n_targets = 3, length - 1
    n = n_targets // B
    with torch.no_grad():
        total = sum(_token_by_token(model, stream[b * n:(b + 1) * n + 1]) for b in range(B - 1))
        total += _token_by_token(model, stream[(B - 1) * n:])        # last stream and the tail
        whole = _token_by_token(model, stream)
    got = perplexity(model, stream, batch_size=B, bptt=3)
    assert got["tokens"] == n_targets
    assert got["loss"] == pytest.approx(total / n_targets, rel=1e-5)
    assert got["ppl"] == pytest.approx(math.exp(total / n_targets), rel=1e-5)
    assert perplexity(model, stream, batch_size=1, bptt=4)["loss"] == pytest.approx(whole / n_targets, rel=1e-5)


# -- SepConv (ops.py) -------------------------------------------------------------------------------
def _bn(x, bn, training):
    if training:
        mean, var = x.mean((0, 2, 3)), x.var((0, 2, 3), unbiased=False)
    else:
        mean, var = bn.running_mean, bn.running_var
    sh = (1, -1, 1, 1)
    return (x - mean.view(sh)) / torch.sqrt(var.view(sh) + bn.eps) * bn.weight.view(sh) + bn.bias.view(sh)


@pytest.mark.parametrize("training", [False, True])
@pytest.mark.parametrize("stride,size", [(1, 5), (2, 6)])
def test_sepconv_against_the_formula(training, stride, size):
    """2 × (ReLU → depthwise k×k, TF "SAME" → pointwise 1×1 → BN), stride on the first only."""
    torch.manual_seed(0)
    cin, cout, k = 3, 4, 3
    op = SepConv(cin, cout, k, stride=stride)
    with torch.no_grad():
        for m in op.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-1, 1)
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2)
    op.train(training)
    x = torch.randn(2, cin, size, size)
    convs = [m for m in op.modules() if isinstance(m, torch.nn.Conv2d)]
    bns = [m for m in op.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert len(convs) == 4 and len(bns) == 2
    with torch.no_grad():
        y, c = x, cin
        for r in range(2):
            s = stride if r == 0 else 1
            y = torch.relu(y)
            out = math.ceil(y.shape[-1] / s)
            pad = max((out - 1) * s + k - y.shape[-1], 0)
            y = F.pad(y, (pad // 2, pad - pad // 2, pad // 2, pad - pad // 2))
            y = F.conv2d(y, convs[2 * r].weight, stride=s, groups=c)
            y = F.conv2d(y, convs[2 * r + 1].weight)
            y = _bn(y, bns[r], training)
            c = cout
        got = op(x)
    assert got.shape == (2, cout, math.ceil(size / stride), math.ceil(size / stride))
    torch.testing.assert_close(got, y, rtol=1e-5, atol=1e-5)


# -- the recurrent cell's activations (enas_rnn.py) ------------------------------------------------
FORMULAS = {"tanh": torch.tanh, "relu": lambda v: torch.clamp(v, min=0), "sigmoid": lambda v: 1 / (1 + torch.exp(-v)),
            "identity": lambda v: v}


@pytest.mark.parametrize("act", ENAS_RNN_ACTIVATIONS)
def test_enas_rnn_cell_activation_against_the_formula(act):
    a = ENAS_RNN_ACTIVATIONS.index(act)
    f = FORMULAS[act]
    torch.manual_seed(0)
    I, H = 3, 5
    nodes = [(0, a), (1, a), (0, a)]
    cell = ENASRNNCell(nodes, I, H, init_range=0.8)
    x, h_prev = torch.randn(4, I), torch.randn(4, H)
    with torch.no_grad():
        h, t = (torch.cat([x, h_prev], 1) @ cell.w_prev).split(H, 1)
        c = 1 / (1 + torch.exp(-t))
        states = [c * torch.tanh(h) + (1 - c) * h_prev]
        for (p, _), w in zip(nodes, cell.w):
            h, t = (states[p] @ w).split(H, 1)
            c = 1 / (1 + torch.exp(-t))
            assert (h < 0).any() and (h > 0).any()
            states.append(c * f(h) + (1 - c) * states[p])
        want = (states[1] + states[2] + states[3]) / 3          # output="average": nodes 1..N
        got = cell(x, h_prev)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


# -- found by mutation testing of training/language.py and enas.py ---------------------------------
def test_language_model_loss_regularisers_by_hand():
    """enas_lm: loss = CE + alpha · mean(s²) + beta · mean((s_t − s_{t−1})²), s the cell outputs."""
    from torchnas.nn.lm import LMOutput
    from torchnas.training import LMTraining
    g = torch.Generator().manual_seed(0)
    top, E, s = torch.randn(4, 3, 6, generator=g), torch.randn(7, 6, generator=g), torch.randn(4, 3, 5, generator=g)
    logits = top @ E.t()
    y = torch.randint(0, 7, (4, 3), generator=g)
    t = LMTraining.__new__(LMTraining)
    t.alpha, t.beta = 0.7, 1.3
    loss, ce = t.loss(LMOutput(top, E, None, s), y)
    ce_hand = F.cross_entropy(logits.reshape(-1, 7), y.reshape(-1))
    ar = sum(float(v) ** 2 for v in s.flatten()) / s.numel()
    tar = sum(float(v) ** 2 for v in (s[1:] - s[:-1]).flatten()) / s[1:].numel()
    torch.testing.assert_close(ce, ce_hand)
    assert loss.item() == pytest.approx(ce_hand.item() + 0.7 * ar + 1.3 * tar, rel=1e-5)
    two = LMOutput(top[:2], E, None, s[:2])                           # two steps: one difference
    assert t.loss(two, y[:2])[0].item() == pytest.approx(
        F.cross_entropy(logits[:2].reshape(-1, 7), y[:2].reshape(-1)).item() + 0.7 * s[:2].pow(2).mean().item()
        + 1.3 * (s[1] - s[0]).pow(2).mean().item(), rel=1e-5)
    one = LMOutput(top[:1], E, None, s[:1])                           # one step: no slowness term
    assert t.loss(one, y[:1])[0].item() == pytest.approx(F.cross_entropy(logits[0], y[0]).item() + 0.7 *
                                                         s[0].pow(2).mean().item(), rel=1e-5)


def test_nt_asgd_starts_only_when_worse_than_the_best_before_the_last_nonmono():
    """fixed_lib.py: average once valid ppl > min(ppl of all epochs but the last nonmono)."""
    from torchnas.training import LMTraining
    t = LMTraining.__new__(LMTraining)
    t.average, t.nonmono, t.avg, t.valid_history = "nt-asgd", 2, None, [5.0, 4.0, 6.0]
    t.model = torch.nn.Linear(2, 2)
    assert t.end_epoch(5.0) is False and t.avg is None     # min of [5.0] is 5.0: equal is not worse
    assert t.end_epoch(4.5) is True and t.avg is not None  # min of [5.0, 4.0] is 4.0 < 4.5: averaging starts


def test_derive_reports_the_mean_reward_over_its_batches():
    space = get_space("nb201")
    s = ENASSearch(space, Reinforce(space, seed=0), seed=0, net={"channels": 4, "num_cells": 1}, derive_batches=3,
                   **{**TINY_IMAGES, "derive_samples": 4, "keep": 4})
    seen = []
    s.shared.rewards = lambda pairs: [seen.append((str(a), id(b))) or (len(seen) % 3) / 10 for a, b in pairs]
    derived = s.derive()
    for d in derived:                   # each candidate scored on 3 batches: rewards 0.1, 0.2, 0.0
        assert d["reward"] == pytest.approx(0.1) and d["valid_acc"] == d["reward"]
    batches = {}
    for arch, b in seen:
        batches.setdefault(arch, []).append(b)
    assert len({tuple(v) for v in batches.values()}) == 1 and len(set(next(iter(batches.values())))) == 3


# -- the CNN ops of nn/ops.py against hand-written loops (mutation-testing survivors, issue 11) -------
def _tf_same_pool(x, kind, k, s):
    """TF "SAME" pooling written out: out = ceil(n / s), total padding max((out-1)s + k - n, 0)
    split before = total // 2; each window's average over its positions inside the image."""
    n_h, n_w = x.shape[-2:]
    o_h, o_w = -(-n_h // s), -(-n_w // s)
    top = max((o_h - 1) * s + k - n_h, 0) // 2
    left = max((o_w - 1) * s + k - n_w, 0) // 2
    out = torch.empty(x.shape[:2] + (o_h, o_w))
    for i in range(o_h):
        for j in range(o_w):
            rows = [r for r in range(i * s - top, i * s - top + k) if 0 <= r < n_h]
            cols = [c for c in range(j * s - left, j * s - left + k) if 0 <= c < n_w]
            win = x[:, :, rows][:, :, :, cols].flatten(2)
            out[:, :, i, j] = win.max(-1).values if kind == "max" else win.mean(-1)
    return out


@pytest.mark.parametrize("size", [(5, 5), (6, 7), (8, 8), (4, 9)])
@pytest.mark.parametrize("k,s", [(3, 1), (3, 2), (5, 1), (5, 2), (1, 2)])
@pytest.mark.parametrize("kind", ["avg", "max"])
def test_same_pooling_by_hand(size, k, s, kind):
    from torchnas.nn.ops import pool2d_same
    x = torch.randn(3, 2, *size, generator=torch.Generator().manual_seed(k * 10 + s))
    torch.testing.assert_close(pool2d_same(x, kind, k, s), _tf_same_pool(x, kind, k, s))
    torch.testing.assert_close(pool2d_same(x, kind), _tf_same_pool(x, kind, 3, 1))        # defaults: 3x3, stride 1


def test_pool_op_and_its_projection_by_hand():
    from torchnas.nn.ops import Pool, pool2d_same
    x = torch.randn(2, 4, 7, 6, generator=torch.Generator().manual_seed(0))
    same = Pool("max", 4, 4, stride=2, kernel_size=5)
    assert same.proj is None and (same.kind, same.kernel_size, same.stride) == ("max", 5, 2)
    torch.testing.assert_close(same(x), _tf_same_pool(x, "max", 5, 2))
    assert (Pool("avg", 4, 4).kernel_size, Pool("avg", 4, 4).stride) == (3, 1)
    wider = Pool("avg", 4, 6, stride=2, eps=1e-5).eval()
    conv, bn = wider.proj[1], wider.proj[2]
    assert conv.weight.shape == (6, 4, 1, 1) and bn.eps == 1e-5
    ref = torch.einsum("oi,bihw->bohw", conv.weight[:, :, 0, 0], torch.relu(_tf_same_pool(x, "avg", 3, 2)))
    torch.testing.assert_close(wider(x), ref / (1 + 1e-5) ** 0.5)
    for bad in (lambda: Pool("min", 4, 4), lambda: pool2d_same(x, "min")):
        with pytest.raises(ValueError) as e:
            bad()
        assert str(e.value) == "pool kind must be 'avg' or 'max', not 'min'"


def test_factorized_reduce_and_identity_by_hand():
    """``_factorized_reduction``: two stride-2 1x1 convs, one on x, one on x shifted by one row
    and column (zeros at the bottom and right), concatenated, then BN (eval: x / sqrt(1 + eps))."""
    from torchnas.nn import ops as O
    x = torch.randn(2, 3, 6, 5, generator=torch.Generator().manual_seed(1))
    fr = O.FactorizedReduce(3, 4).eval()
    assert fr.conv_1.weight.shape == (2, 3, 1, 1) and fr.conv_1.stride == (2, 2) and fr.bn.eps == O.BN_EPS
    shifted = torch.zeros_like(x)
    shifted[:, :, :-1, :-1] = x[:, :, 1:, 1:]
    mm = lambda w, t: torch.einsum("oi,bihw->bohw", w[:, :, 0, 0], t[:, :, ::2, ::2])
    ref = torch.cat([mm(fr.conv_1.weight, x), mm(fr.conv_2.weight, shifted)], 1) / (1 + O.BN_EPS) ** 0.5
    torch.testing.assert_close(fr(x), ref)
    relu = O.FactorizedReduce(3, 4, relu=True, eps=1e-5).eval()
    relu.load_state_dict(fr.state_dict())
    assert relu.bn.eps == 1e-5
    xr = torch.relu(x)
    shifted_r = torch.relu(shifted)
    torch.testing.assert_close(relu(x), torch.cat([mm(fr.conv_1.weight, xr), mm(fr.conv_2.weight, shifted_r)], 1)
                               / (1 + 1e-5) ** 0.5)
    one = O.FactorizedReduce(3, 5, stride=1).eval()
    assert one.conv.weight.shape == (5, 3, 1, 1) and one.conv.bias is None
    torch.testing.assert_close(one(x), torch.einsum("oi,bihw->bohw", one.conv.weight[:, :, 0, 0], x) / (1 + O.BN_EPS) ** 0.5)
    for args, message in (((3, 4, 3), "factorized reduction supports stride 1 or 2, not 3"),
                          ((3, 5, 2), "factorized reduction needs an even number of output channels, got 5")):
        with pytest.raises(ValueError) as e:
            O.FactorizedReduce(*args)
        assert str(e.value) == message
    # Identity: itself; a ReLU-conv1x1-BN when the channels change; a factorized reduction at stride 2
    same = O.Identity(3, 3)
    assert type(same.op) is torch.nn.Identity and torch.equal(same(x), x)
    wider = O.Identity(3, 4, eps=1e-5).eval()
    assert wider(x).shape == (2, 4, 6, 5) and isinstance(wider.op, O.ReLUConvBN) and wider.op[1].kernel_size == (1, 1) and wider.op[2].eps == 1e-5
    torch.testing.assert_close(wider(x), torch.einsum("oi,bihw->bohw", wider.op[1].weight[:, :, 0, 0], xr)
                               / (1 + 1e-5) ** 0.5)
    reduce = O.Identity(3, 4, stride=2, eps=1e-5)
    assert isinstance(reduce.op, O.FactorizedReduce) and reduce.op.stride == 2 and not reduce.op.relu
    assert reduce.op.bn.eps == 1e-5 and reduce.op.conv_1.weight.shape == (2, 3, 1, 1)


@pytest.mark.parametrize("name,kinds,expected", [
    ("sep_conv_3x3", ("conv", "sep_conv"), ("sep_conv", 3)), ("conv_5x5", ("conv",), ("conv", 5)),
    ("avg_pool_3x3", ("avg_pool", "max_pool"), ("avg_pool", 3)), ("max_pool_7x7", ("max_pool",), ("max_pool", 7)),
    ("identity", ("identity", "conv"), ("identity", 1)), ("conv_11x11", ("conv",), ("conv", 11)),
    ("conv_3x5", ("conv",), None), ("conv_4x4", ("conv",), None), ("sep_conv_3x3", ("conv",), None),
    ("identity", ("conv",), None), ("conv_3x3 ", ("conv",), None), ("xconv_3x3", ("conv",), None),
    ("conv_x3", ("conv",), None), ("sep_conv_3x3", ("identity", "sep_conv"), ("sep_conv", 3)),
    ("conv_2x2", ("identity", "conv"), None)])
def test_parse_op_by_hand(name, kinds, expected):
    from torchnas.nn.ops import parse_op
    if expected is not None:
        assert parse_op(name, "my-space", kinds) == expected
        return
    with pytest.raises(ValueError) as e:
        parse_op(name, "my-space", kinds)
    allowed = "conv_KxK" if kinds == ("conv",) else "identity, conv_KxK"
    assert str(e.value) == f"my-space: unknown op {name!r}; use {allowed} with an odd K"


def test_batch_norm_batch_stats_and_init_by_hand():
    """``image_ops.py``: BN epsilon 1e-3 and decay 0.9 (running = 0.9 running + 0.1 batch); the
    search network's BN normalising with the batch in eval mode too, keeping nothing; He-normal
    fan-in init (std sqrt(2 / fan_in)) with zero biases; SepConv's BNs at the eps it is given."""
    from torchnas.nn import ops as O
    bn = O.batch_norm(3)
    assert (bn.eps, bn.momentum) == (1e-3, 0.1) and O.batch_norm(3, 1e-5).eps == 1e-5
    x = torch.randn(8, 3, 4, 4, generator=torch.Generator().manual_seed(0)) * 2 + 1
    bn(x)
    torch.testing.assert_close(bn.running_mean, 0.1 * x.mean((0, 2, 3)))
    net = O.use_batch_stats(torch.nn.Sequential(O.batch_norm(3), torch.nn.Sequential(O.batch_norm(3)))).eval()
    assert all(m.track_running_stats is False and m.running_mean is None and m.running_var is None
               and m.num_batches_tracked is None for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d))
    mu, var = x.mean((0, 2, 3), keepdim=True), x.var((0, 2, 3), unbiased=False, keepdim=True)
    torch.testing.assert_close(net[0](x), (x - mu) / (var + 1e-3).sqrt())
    torch.manual_seed(0)
    m = O.init_weights(torch.nn.Sequential(torch.nn.Conv2d(64, 128, 3, bias=True), torch.nn.Linear(512, 256),
                                           O.batch_norm(4)))
    conv, lin, b = m
    assert abs(conv.weight.std().item() - (2 / (64 * 9)) ** 0.5) < 0.03 * (2 / (64 * 9)) ** 0.5
    assert abs(lin.weight.std().item() - (2 / 512) ** 0.5) < 0.03 * (2 / 512) ** 0.5
    assert torch.equal(conv.bias, torch.zeros(128)) and torch.equal(lin.bias, torch.zeros(256))
    assert torch.equal(b.weight, torch.ones(4)) and torch.equal(b.bias, torch.zeros(4))
    sep = O.SepConv(4, 6, 3, eps=1e-5)
    assert [m.eps for m in sep.modules() if isinstance(m, torch.nn.BatchNorm2d)] == [1e-5, 1e-5]
    assert all(c.bias is None for c in sep.modules() if isinstance(c, torch.nn.Conv2d))


def test_conv_same_and_relu_conv_bn_by_hand():
    """Conv2dSame: TF "SAME" padding (stride 1 by default, its bias when asked for);
    ReLUConvBN: ReLU, the k x k conv at its stride (1x1 by default), BN."""
    from torchnas.nn import ops as O
    x = torch.randn(2, 3, 7, 6, generator=torch.Generator().manual_seed(2))
    conv = O.Conv2dSame(3, 4, 3)
    assert conv.stride == (1, 1) and conv.bias is None
    pad = torch.nn.functional.pad(x, (1, 1, 1, 1))
    torch.testing.assert_close(conv(x), torch.nn.functional.conv2d(pad, conv.weight))
    biased = O.Conv2dSame(3, 4, 3, 2, bias=True)
    with torch.no_grad():
        biased.bias.fill_(0.5)
    ref = torch.nn.functional.conv2d(torch.nn.functional.pad(x, (0, 1, 1, 1)), biased.weight, stride=2) + 0.5
    torch.testing.assert_close(biased(x), ref)            # 7 rows: pad 1 + 1; 6 columns: pad 0 + 1
    one = O.ReLUConvBN(3, 4)
    assert one[1].kernel_size == (1, 1) and one[1].stride == (1, 1) and one[2].eps == O.BN_EPS
    rcb = O.ReLUConvBN(3, 4, 3, 2).eval()
    assert rcb[1].weight.shape == (4, 3, 3, 3) and rcb[1].stride == (2, 2)
    ref = torch.nn.functional.conv2d(torch.nn.functional.pad(torch.relu(x), (0, 1, 1, 1)), rcb[1].weight, stride=2)
    torch.testing.assert_close(rcb(x), ref / (1 + O.BN_EPS) ** 0.5)


def test_drop_path_and_aux_head_by_hand():
    """``image_ops.py`` drop_path: nothing outside training or at keep_prob 1, else whole examples
    zeroed (mask floor(keep_prob + U)) and the rest scaled by 1 / keep_prob. ``micro_child.py``
    aux head: ReLU, 5x5 average pool stride 3 (VALID), 1x1 conv to 128, BN, ReLU, a conv as
    large as the pooled map to 768, BN, ReLU, global mean, linear without bias."""
    from torchnas.nn import ops as O
    x = torch.randn(64, 2, 3, 3, generator=torch.Generator().manual_seed(3))
    assert O.drop_path(x, 0.5, training=False) is x and O.drop_path(x, 1.0) is x
    torch.manual_seed(0)
    u = torch.rand(64, 1, 1, 1)
    torch.manual_seed(0)
    torch.testing.assert_close(O.drop_path(x, 0.6), x / 0.6 * torch.floor(0.6 + u))
    assert 0 < int((torch.floor(0.6 + u) == 0).sum()) < 64                 # some examples dropped, not all
    head = O.AuxHead(5, 7, input_size=8).eval()
    pool, conv1, bn1, conv2, bn2 = head.features[1], head.features[2], head.features[3], head.features[5], head.features[6]
    assert conv1.weight.shape == (128, 5, 1, 1) and conv1.bias is None and conv2.weight.shape == (768, 128, 2, 2)
    assert head.classifier.weight.shape == (7, 768) and head.classifier.bias is None
    with torch.no_grad():
        for bn in (bn1, bn2):
            bn.running_mean.uniform_(-1, 1)
            bn.running_var.uniform_(0.5, 2)
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.uniform_(-1, 1)
    feat = torch.randn(3, 5, 8, 8, generator=torch.Generator().manual_seed(4))
    r = torch.relu(feat)
    pooled = torch.stack([torch.stack([r[:, :, 3 * i:3 * i + 5, 3 * j:3 * j + 5].mean((2, 3)) for j in range(2)], -1)
                          for i in range(2)], -2)                           # VALID: (8 - 5) // 3 + 1 = 2
    bn = lambda m, t: (t - m.running_mean[:, None, None]) / (m.running_var[:, None, None] + m.eps).sqrt() \
        * m.weight[:, None, None] + m.bias[:, None, None]
    h = torch.relu(bn(bn1, torch.einsum("oi,bihw->bohw", conv1.weight[:, :, 0, 0], pooled)))
    h = torch.nn.functional.conv2d(torch.nn.functional.pad(h, (0, 1, 0, 1)), conv2.weight)   # SAME, k = 2
    h = torch.relu(bn(bn2, h)).mean((2, 3))
    with torch.no_grad():
        torch.testing.assert_close(head(feat), h @ head.classifier.weight.t(), rtol=1e-4, atol=1e-5)
    assert head.features[0].__class__ is torch.nn.ReLU and pool.kernel_size == 5 and pool.stride == 3
    assert O.AuxHead(5, 7, input_size=5).features[5].weight.shape[-1] == 1
    with pytest.raises(ValueError) as e:
        O.AuxHead(5, 7, input_size=4)
    assert str(e.value) == "the auxiliary head needs an input of at least 5x5, got 4x4"


# --- issue 27 item 11: the newest modules against their definitions ------------------------------

def _bn_eval(m, t):
    return (t - m.running_mean[:, None, None]) / (m.running_var[:, None, None] + m.eps).sqrt() \
        * m.weight[:, None, None] + m.bias[:, None, None]


def _randomize_bn(net, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(torch.rand(m.num_features, generator=g) - 0.5)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.weight.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.bias.copy_(torch.rand(m.num_features, generator=g) - 0.5)


def test_nb201_network_against_the_benchmark_definition():
    """AutoDL-Projects ``TinyNetwork`` / ``InferCell`` / ``ResNetBasicblock``, written out here with
    F.conv2d: stem conv3x3 + BN; node i = Σ_{j<i} op(i←j) over the arch string's edges (each edge
    a different op, so a wire to the wrong node shows); between stages ReLU-conv3x3(stride 2)-BN,
    ReLU-conv3x3-BN, plus avgpool 2x2 and a 1x1 conv; the head BN, then ReLU, mean, linear."""
    from torchnas.spaces.nb201 import NB201Net, ResidualReduction
    ops = ["nor_conv_3x3", "nor_conv_1x1", "avg_pool_3x3", "skip_connect", "nor_conv_3x3", "nor_conv_1x1"]
    net = NB201Net(ops, 3, 4, channels=2, num_cells=1).eval()
    _randomize_bn(net, 0)
    rcb = lambda seq, t, stride=1: _bn_eval(seq[2], F.conv2d(F.relu(t), seq[1].weight, stride=stride,
                                                                padding=seq[1].kernel_size[0] // 2))

    def cell(c, t):
        e = c.edges
        n1 = rcb(e[0], t)                                                     # 1 <- 0: conv 3x3
        n2 = rcb(e[1], t) + F.avg_pool2d(n1, 3, 1, 1, count_include_pad=False)  # 2 <- 0: conv 1x1, 2 <- 1: pool
        return t + rcb(e[4], n1) + rcb(e[5], n2)                              # 3 <- 0 skip, 3 <- 1, 3 <- 2

    def reduction(r, t):
        return F.conv2d(F.avg_pool2d(t, 2, 2), r.downsample[1].weight) + rcb(r.conv_b, rcb(r.conv_a, t, 2))
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    h = _bn_eval(net.stem[1], F.conv2d(x, net.stem[0].weight, padding=1))
    for layer in net.layers:
        h = reduction(layer, h) if isinstance(layer, ResidualReduction) else cell(layer, h)
    h = F.relu(_bn_eval(net.lastact[0], h)).mean((2, 3))
    with torch.no_grad():
        torch.testing.assert_close(net(x), h @ net.classifier.weight.t() + net.classifier.bias)
    assert h.shape == (2, 8) and net.layers[1].conv_a[1].stride == (2, 2) and net.layers[1].conv_b[1].stride == (1, 1)


def test_nb201_percentile_and_rank_with_ties_by_hand():
    """A cell's rank counts the cells strictly better plus one (ties share the best rank); its
    percentile is the share strictly worse. On a column with ties, by counting."""
    from bisect import insort
    from torchnas.spaces.nb201 import _percentile, _rank
    column = []
    for v in [5.0, 7.0, 7.0, 7.0, 9.0, 1.0, 7.0, 9.0]:
        insort(column, v)
    for v in (1.0, 5.0, 7.0, 9.0):
        assert _rank(column, v) == 1 + sum(c > v for c in column)
        assert _percentile(column, v) == round(100 * sum(c < v for c in column) / len(column), 2)
    assert (_rank(column, 7.0), _percentile(column, 7.0)) == (3, 25.0)


def test_low_resolution_proxy_is_area_averaging_by_hand():
    """``downsample``: each output pixel the mean of its input block (PyTorch's area mode is
    adaptive average pooling: rows floor(i·H/h) .. ceil((i+1)·H/h)), rounded half to even for
    uint8; 8 → 4 (2x2 blocks) and 8 → 3 (overlapping blocks)."""
    from torchnas.data.images import downsample
    x = torch.randint(0, 256, (3, 2, 8, 8), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    for size in (4, 3):
        bounds = [(math.floor(i * 8 / size), math.ceil((i + 1) * 8 / size)) for i in range(size)]
        want = torch.empty(3, 2, size, size)
        for i, (r0, r1) in enumerate(bounds):
            for j, (c0, c1) in enumerate(bounds):
                want[:, :, i, j] = x[:, :, r0:r1, c0:c1].double().mean((2, 3)).float()
        assert torch.equal(downsample(x, size), torch.round(want).to(torch.uint8))
        torch.testing.assert_close(downsample(x.float(), size), want)


def test_enas_reward_minibatch_is_plain_validation_images():
    """The reward is measured on validation images as they are (normalised, never augmented or
    cut out: ``micro_child.py`` ``_build_valid_rl`` reads them without the training pipeline)."""
    search = _nb201_images_search()
    sh = search.shared
    sh.generator.manual_seed(5)
    x, y = sh.valid_batch()
    data = sh.data
    want = data.normalize(data.valid_x)
    for xi, yi in zip(x, y):
        hits = [i for i in range(len(want)) if torch.equal(xi, want[i])]
        assert hits and any(int(data.valid_y[i]) == int(yi) for i in hits)


def _nb201_images_search():
    from torchnas.enas import make_enas
    space = get_space("nb201")
    return make_enas(space, Reinforce(space, seed=0, batch_size=2), seed=0,
                     **{**TINY_IMAGES, "net": {"channels": 2, "num_cells": 1}, "reward_batch": 16})


def test_drop_path_keep_probability_rises_linearly_with_the_step():
    """``micro_child.py`` ``_apply_drop_path``: at global step s (0-based) of N,
    keep = 1 − min(1, (s + 1) / N) · (1 − p), then cell l scales it to 1 − (l + 1)/(L + 2) · (1 − keep)."""
    seen = []

    class Probe(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(64, 10)
            self.drop_path_keep_prob = 1.0

        def forward(self, x):
            seen.append(self.drop_path_keep_prob)
            return self.fc(x.flatten(1))
    from torchnas.data.images import load_image_data
    data = load_image_data("digits", per_class=8)
    t = Training(Probe(), data, epochs=2, batch_size=32, drop_path=0.6, augment=False, channels_last=False,
                 device="cpu")
    t.train_epoch()
    t.train_epoch()
    n = t.total_steps
    assert len(seen) == n and seen == pytest.approx([1 - min(1, (s + 1) / n) * 0.4 for s in range(n)])
    from torchnas.spaces.enas_micro import ENASMicroSpace
    space = ENASMicroSpace()
    net = space.child(space.random(random.Random(0)), 3, 10, channels=4, num_layers=3, image_size=8)
    net.drop_path_keep_prob = 0.7
    assert [net.layer_keep_prob(layer) for layer in range(5)] == pytest.approx(
        [1 - (layer + 1) / 5 * 0.3 for layer in range(5)])


def test_micro_cell_drops_paths_of_every_op_but_identity(monkeypatch):
    """``micro_child.py`` ``_fixed_layer``: drop-path on an op's output when the op is not the
    identity (x_op in [0, 1, 2, 3]), in training only, with the cell's keep probability."""
    from torchnas.nn import ops as O
    from torchnas.spaces.enas_micro import ENASMicroSpace
    space = ENASMicroSpace()
    calls = []
    monkeypatch.setattr(O, "drop_path", lambda h, keep, training=True: (calls.append((h.shape, keep)), h)[1])
    arch = space.random(random.Random(3))
    net = space.child(arch, 3, 10, channels=4, num_layers=1, image_size=8)
    cell = net.cells[0]
    names = [space.ops[op] for node in cell.nodes for op in (node[1], node[3])]
    assert "identity" in names and len(set(names)) > 1            # the drawn cell has both kinds
    x = net.stem(torch.randn(2, 3, 8, 8))
    cell.train()
    cell(x, x, 0.8)
    assert len(calls) == sum(n != "identity" for n in names) and all(k == 0.8 for _, k in calls)
    calls.clear()
    cell.eval()
    cell(x, x, 0.8)
    assert calls == []


@pytest.mark.parametrize("t0, t_mul", [(10, 2), (3, 1), (2, 3)])
def test_cosine_restart_periods_grow_by_t_mul_by_hand(t0, t_mul):
    """SGDR (Loshchilov & Hutter 2017, eq. 5) per epoch: period k lasts t0·t_mul^k epochs; within
    it lr = lr_min + ½(lr_max − lr_min)(1 + cos(π·t_cur/T_k)); 10, 20, 40, 80, 160 for ENAS."""
    from torchnas.training import cosine_restart_lr
    starts, length = [0], t0
    while starts[-1] < 700:
        starts.append(starts[-1] + length)
        length *= t_mul
    for epoch in range(0, 700, 7):
        k = max(i for i, s in enumerate(starts) if s <= epoch)
        period = starts[k + 1] - starts[k]
        want = 0.001 + 0.5 * (0.1 - 0.001) * (1 + math.cos(math.pi * (epoch - starts[k]) / period))
        assert cosine_restart_lr(epoch, 0.1, 0.001, t0, t_mul) == pytest.approx(want)
    if t_mul == 2:
        assert starts[:6] == [0, 10, 30, 70, 150, 310]


def test_augment_crop_offsets_cover_every_shift_uniformly():
    """Pad-and-crop (He et al. 2016): the crop's top-left corner is uniform over the 2p + 1
    offsets of each axis, 0 and 2p included: read off the output of an image whose pixels hold
    their own coordinates."""
    from torchnas.data.images import Augment
    p, h, w, n = 2, 6, 7, 4000
    rows = torch.arange(1, h + 1).view(h, 1).expand(h, w)
    cols = torch.arange(1, w + 1).view(1, w).expand(h, w)
    img = torch.stack([rows, cols]).to(torch.uint8)                   # channel 0: row + 1, channel 1: col + 1
    out = Augment(pad=p, flip=False)(img.expand(n, 2, h, w), torch.Generator().manual_seed(0))
    # the output pixel (i, j) shows input (i + oy - p, j + ox - p) (0 where that is padding)
    first_row = out[:, 0].max(dim=2).values                           # (n, h): row+1 of each output row, or 0
    oy = torch.tensor([next(i - int(r[i]) + 1 + p for i in range(h) if r[i] > 0) for r in first_row])
    first_col = out[:, 1].max(dim=1).values
    ox = torch.tensor([next(j - int(c[j]) + 1 + p for j in range(w) if c[j] > 0) for c in first_col])
    for o in (oy, ox):
        counts = torch.bincount(o, minlength=2 * p + 1)
        assert len(counts) == 2 * p + 1 and (counts > n / (2 * p + 1) * 0.85).all(), counts


def test_cosine_annealing_by_hand():
    """Cosine annealing without restarts (Loshchilov & Hutter 2017, eq. 5 with one period and
    η_min = 0), per step: lr at step 0, half of it midway, lr·(1 + cos(π/4))/2 a quarter of the
    way, 0 at the end; symmetric about the middle in its distance from lr / 2."""
    from torchnas.training.schedules import cosine_lr
    assert cosine_lr(0, 400, 0.2) == pytest.approx(0.2)
    assert cosine_lr(100, 400, 0.2) == pytest.approx(0.1 * (1 + math.sqrt(0.5)))
    assert cosine_lr(200, 400, 0.2) == pytest.approx(0.1)
    assert cosine_lr(400, 400, 0.2) == pytest.approx(0.0, abs=1e-12)
    assert cosine_lr(300, 400, 0.2) == pytest.approx(0.2 - cosine_lr(100, 400, 0.2))
    assert cosine_lr(37, 100, 1.0) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.37)))


def test_nb201_percentile_is_rounded_to_two_decimals():
    """1 of 3 cells strictly below: 33.33 (not 33.333)."""
    from torchnas.spaces.nb201 import _percentile
    assert _percentile([1.0, 2.0, 3.0], 2.0) == 33.33


def test_nb201_ops_batch_norm_and_the_network_defaults_are_the_benchmarks():
    """NAS-Bench-201's ReLU-conv-BN: a child's BN learns its affine and tracks statistics (the
    benchmark's training); the shared-weight cell's does neither (the search setting, as
    AutoDL-Projects' weight-sharing cells); the default network is the benchmark's: 16 channels,
    5 cells a stage. Mutation-testing survivors (issue 27, item 11)."""
    from torchnas.spaces.nb201 import NB201Net, SharedCell, make_op
    bns = lambda m: [b for b in m.modules() if isinstance(b, torch.nn.BatchNorm2d)]
    (bn,) = bns(make_op("nor_conv_3x3", 4))
    assert bn.affine and bn.track_running_stats
    (bn,) = bns(make_op("nor_conv_1x1", 4, affine=False, track_running_stats=False))
    assert not bn.affine and not bn.track_running_stats
    (bn,) = bns(make_op("nor_conv_1x1", 4, affine=True, track_running_stats=False))
    assert bn.affine and not bn.track_running_stats
    assert all(not b.affine and not b.track_running_stats for b in bns(SharedCell(4)))
    from torchnas.spaces.nb201 import NB201Cell
    assert all(b.affine and b.track_running_stats for b in bns(NB201Cell(["nor_conv_3x3"] * 6, 4)))
    net = NB201Net(["nor_conv_3x3"] * 6, 3, 10)
    assert net.stem[0].out_channels == 16 and sum(isinstance(m, NB201Cell) for m in net.layers) == 15
    with pytest.raises(ValueError, match="channels >= 1"):
        NB201Net(["none"] * 6, 3, 10, channels=0)
    with pytest.raises(ValueError, match="num_cells >= 1"):
        NB201Net(["none"] * 6, 3, 10, num_cells=0)
    NB201Net(["none"] * 6, 3, 10, channels=1, num_cells=1)      # the smallest network is allowed


def test_nb201_parameter_free_dropout_has_the_set_rate():
    """P-DARTS's dropout on parameter-free edges at rate p: in training, a skip edge's output is
    0 or x / (1 - p), zero in about p of its elements."""
    from torchnas.spaces.nb201 import SharedCell
    cell = SharedCell(2)
    cell.drop = 0.2
    cell.train()
    torch.manual_seed(0)
    x = torch.ones(4, 2, 16, 16)
    skip_only = [0, 0, 0, 1, 0, 0]           # the edge 0 -> 3 skip_connect, every other edge none
    out = cell(x, skip_only)
    nonzero = out[out != 0]
    assert torch.allclose(nonzero, torch.full_like(nonzero, 1 / 0.8))
    assert abs((out == 0).float().mean().item() - 0.2) < 0.03
