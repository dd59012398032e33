import math
from collections import Counter

import pytest
import torch

from torchnas.controller import Controller, _bernoulli
from torchnas.spaces import NB201Space, ToySpace, iter_all


def _check_frequencies(space, n=40000, **kw):
    c = Controller(space, init_range=1.0, seed=3, **kw)   # a wide init makes the distribution uneven
    archs = list(iter_all(space))
    with torch.no_grad():
        probs = c.log_prob(archs).log_probs.exp()
        assert probs.sum().item() == pytest.approx(1.0, abs=1e-4)   # a proper distribution
        sample = c.sample(n, torch.Generator().manual_seed(0))
    counts = Counter(sample.archs)
    assert set(counts) <= set(archs)
    worst = 0.0
    for a, p in zip(archs, probs.tolist()):
        sd = math.sqrt(n * p * (1 - p)) + 1e-9
        worst = max(worst, abs(counts.get(a, 0) - n * p) / sd)
    assert worst < 5.0, f"sampling frequency off by {worst:.1f} sigma"
    assert probs.max() > 3 * probs.min()   # the check was not against a uniform distribution


def test_frequencies_match_log_prob_chain_all_kinds():
    _check_frequencies(ToySpace(layers=3, options=2, layout="chain"))


def test_frequencies_match_log_prob_cell_anchors():
    _check_frequencies(ToySpace(layers=3, options=2, layout="cell"), tanh_constant=1.5, op_tanh_reduce=2.5)


def test_nb201_log_prob_normalised_and_sample_agrees():
    space = NB201Space()
    c = Controller(space, init_range=0.5, seed=1, temperature=2.0, tanh_constant=2.5)
    with torch.no_grad():
        total = c.log_prob(list(iter_all(space))).log_probs.exp().sum().item()
    assert total == pytest.approx(1.0, abs=1e-4)


@pytest.mark.parametrize("space", [NB201Space(), ToySpace(layers=4, options=3), ToySpace(layers=3, layout="cell")])
def test_log_prob_agrees_with_sampling(space):
    c = Controller(space, seed=0, tanh_constant=1.5)
    s = c.sample(32, torch.Generator().manual_seed(5))
    scored = c.log_prob(s.archs)
    assert torch.allclose(s.log_probs, scored.log_probs, atol=1e-5)
    assert torch.allclose(s.entropies, scored.entropies, atol=1e-5)
    assert torch.allclose(s.skip_penalties, scored.skip_penalties, atol=1e-6)


def test_seeded_sampling_is_reproducible():
    space = ToySpace(layers=4, options=3)
    a = Controller(space, seed=7).sample(16, torch.Generator().manual_seed(11)).archs
    b = Controller(space, seed=7).sample(16, torch.Generator().manual_seed(11)).archs
    c = Controller(space, seed=7).sample(16, torch.Generator().manual_seed(12)).archs
    assert a == b and a != c


def test_every_parameter_gets_a_gradient():
    c = Controller(ToySpace(layers=3, options=2), hidden_size=16, num_layers=2)
    s = c.sample(8, torch.Generator().manual_seed(0))
    (s.log_probs.sum() + s.skip_penalties.sum()).backward()
    for name, p in c.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_temperature_and_tanh_constant():
    c = Controller(NB201Space(), temperature=5.0, tanh_constant=1.1, op_tanh_reduce=2.5)
    x = torch.tensor([[10.0, -3.0, 0.0]])
    assert torch.allclose(c._squash(x, op=True), 0.44 * torch.tanh(x / 5.0))
    assert torch.allclose(c._squash(x, op=False), 1.1 * torch.tanh(x / 5.0))
    # bounded logits bound the policy: no option above e^C / (e^C + (k-1) e^-C)
    c = Controller(NB201Space(), init_range=3.0, tanh_constant=1.5)
    with torch.no_grad():
        lp = c.log_prob(list(iter_all(NB201Space()))[:500]).log_probs
    bound = math.exp(1.5) / (math.exp(1.5) + 4 * math.exp(-1.5))
    assert lp.exp().max().item() <= bound ** 6 + 1e-6


def test_skip_penalty_hand_computed():
    logits = torch.tensor([[0.0, math.log(0.4 / 0.6)]], requires_grad=True)   # p = 0.5 and p = 0.4
    _, _, ent, kl = _bernoulli(logits, torch.tensor([[1.0, 0.0]]), None, target=0.4)
    expected = 0.5 * math.log(0.5 / 0.4) + 0.5 * math.log(0.5 / 0.6)        # the p = 0.4 anchor adds 0
    assert kl.item() == pytest.approx(expected, rel=1e-5) and expected > 0
    assert ent.item() == pytest.approx(math.log(2) - 0.4 * math.log(0.4) - 0.6 * math.log(0.6), rel=1e-5)
    kl.sum().backward()
    assert logits.grad[0, 0] > 0                       # descent lowers p = 0.5 towards 0.4
    assert logits.grad[0, 1].abs() < 1e-6              # already at the target


def test_bad_settings_rejected():
    with pytest.raises(ValueError, match="temperature"):
        Controller(NB201Space(), temperature=0)
    with pytest.raises(ValueError, match="skip_target"):
        Controller(NB201Space(), skip_target=1.5)


@pytest.mark.slow
def test_choice_biases_enas_micro():
    """micro_controller.py: learned b_soft before the tanh, fixed prior after it (normal cell only)."""
    from torchnas.spaces import get_space
    space = get_space("enas-micro")
    c = Controller(space, tanh_constant=1.1, op_tanh_reduce=2.5, choice_bias={"op": [10, 10, 0, 0, 0]})
    assert torch.allclose(c.choice_bias["op"], torch.tensor([10.0, 10, 0, 0, 0]))
    normal, reduce = space.decisions[1], space.decisions[21]
    assert normal.bias == (0.25, 0.25, -0.25, -0.25, -0.25) and reduce.bias is None
    with torch.no_grad():
        s = c.sample(4000, torch.Generator().manual_seed(0))
    ops = torch.tensor([[a.values[i] for i in range(1, 40, 2)] for a in s.archs])
    sep_normal = (ops[:, :10] < 2).float().mean().item()
    sep_reduce = (ops[:, 10:] < 2).float().mean().item()
    # the priors favour the separable convolutions, more in the normal cell
    assert sep_normal > sep_reduce > 0.4
    assert torch.allclose(c.log_prob(s.archs[:50]).log_probs, s.log_probs[:50], atol=1e-5)
    with pytest.raises(ValueError, match="choice_bias"):
        Controller(space, choice_bias={"op": [1, 2]})


def test_enas_lm_anchor_bias_and_input_scaling():
    """enas_lm: logit_j -= (n-j)^2/6 after the tanh; next input h_j / (0.1 + n - j)."""
    space = ToySpace(layers=4, options=2, layout="cell")
    plain = Controller(space, seed=2, temperature=5.0, tanh_constant=2.25)
    biased = Controller(space, seed=2, temperature=5.0, tanh_constant=2.25,
                        anchor_distance_bias=1 / 6, anchor_input_offset=0.1)
    with torch.no_grad():
        a = plain.sample(4000, torch.Generator().manual_seed(0)).archs
        s = biased.sample(4000, torch.Generator().manual_seed(0))
    recent = lambda archs: sum(x.values[6] == 4 for x in archs) / len(archs)   # node3 picks the newest of 5 anchors
    assert recent(s.archs) > recent(a) + 0.1
    assert torch.allclose(biased.log_prob(s.archs[:64]).log_probs, s.log_probs[:64], atol=1e-5)
    with pytest.raises(ValueError, match="anchor_input_offset"):
        Controller(space, anchor_input_offset=0.0)


def test_void_anchor_has_zero_key_and_costs_no_step():
    """enas_lm's node 0: a zero anchor with a zero attention key and no LSTM step, so the first
    node's choice over one anchor is certain and the program's LSTM steps are 2 per node."""
    from torchnas.spaces import get_space
    space = get_space("enas-rnn", num_nodes=3)
    c = Controller(space, temperature=5.0, tanh_constant=2.25, anchor_distance_bias=1 / 6, anchor_input_offset=0.1)
    calls = {"n": 0}
    hook = c.lstm[0].register_forward_hook(lambda *a: calls.__setitem__("n", calls["n"] + 1))
    with torch.no_grad():
        s = c.sample(500, torch.Generator().manual_seed(0))
    hook.remove()
    assert calls["n"] == 2 * 3
    assert all(a.values[0] == 0 for a in s.archs)            # node 1 can only read node 0
    assert torch.allclose(c.log_prob(s.archs[:32]).log_probs, s.log_probs[:32], atol=1e-5)


# -- found by mutation testing (benchmarks/mutate.py; docs/testing.md) ----------------------------
def test_controller_parameters_by_hand_and_defaults():
    """One LSTM layer (with its two biases, nn.LSTMCell), g_emb, per kind a bias-free softmax
    head and an embedding, the bias-free attention W_prev, W_curr, v (Zoph & Le §3.3), and the
    learned choice bias, which keeps its given values."""
    space = NB201Space()                               # one kind, "op", with 5 options
    c = Controller(space, choice_bias={"op": [1.0, 2.0, 0.0, 0.0, -1.0]})
    H, n = 64, 5                                       # the default hidden size
    assert c.g_emb.shape == (1, H) and len(c.lstm) == 1
    lstm = 4 * H * H * 2 + 4 * H * 2
    assert sum(p.numel() for p in c.parameters()) == H + lstm + H * n + n * H + 2 * H * H + H + n
    assert [b.tolist() for b in c.choice_bias.values()] == [[1.0, 2.0, 0.0, 0.0, -1.0]]
    d = Controller(space, seed=0)
    assert all(torch.equal(a, b) for a, b in zip(Controller(space).parameters(), d.parameters()))
    assert len(d.sample().archs) == 1


def test_controller_settings_are_checked_with_one_clear_line():
    space = NB201Space()
    Controller(space, hidden_size=1, temperature=0.5, skip_target=0.01)       # the edges are allowed
    ints = Controller(space, choice_bias={"op": [10, 10, 0, 0, 0]})          # YAML gives integers
    assert ints.choice_bias["op"].dtype == torch.float32
    for kw, msg in [({"hidden_size": 0}, "^controller hidden_size and num_layers must be >= 1$"),
                    ({"num_layers": 0}, "^controller hidden_size and num_layers must be >= 1$"),
                    ({"temperature": 0.0}, "temperature must be > 0, got 0.0"),
                    ({"skip_target": 0.0}, r"skip_target must be in \(0, 1\), got 0.0"),
                    ({"skip_target": 1.0}, r"skip_target must be in \(0, 1\), got 1.0"),
                    ({"anchor_distance_bias": -1.0},
                     "^controller anchor_distance_bias must be >= 0 and anchor_input_offset > 0$"),
                    ({"choice_bias": {"op": [1.0]}}, r"choice_bias\['op'\] must give one value per option"),
                    ({"choice_bias": {"act": [1.0] * 5}}, r"choice_bias\['act'\]")]:
        with pytest.raises(ValueError, match=msg):
            Controller(space, **kw)


def test_cell_layout_zero_anchors_feed_zero_inputs():
    """ENAS micro: the two cell inputs are anchors with zero content; choosing one as a node's
    input makes the next LSTM input zero, an 'h' anchor gives its LSTM output."""
    space = ToySpace(layers=2, options=2, layout="cell")
    c = Controller(space, hidden_size=6, init_range=0.5, seed=0)
    calls = []
    c.lstm[0].register_forward_hook(lambda mod, args, out: calls.append((args[0].detach().clone(),
                                                                          out[0].detach().clone())))
    arch = space.make([0, 1, 2, 0])                    # node0 <- input 0 (zero), node1 <- node0 (h)
    c.log_prob([arch])
    # LSTM steps: the two input anchors, node0.input, node0.op, anchor, node1.input, node1.op, anchor
    assert len(calls) == 8
    torch.testing.assert_close(calls[3][0], torch.zeros(1, 6))
    torch.testing.assert_close(calls[6][0], calls[4][1])


def test_a_space_whose_program_registers_too_few_anchors_is_named():
    from torchnas.spaces import AnchorSet, Choice, SearchSpace, Step

    class Broken(SearchSpace):
        name = "broken"
        decisions = (Choice("op", ("a", "b")), AnchorSet("skips", 2))
        _steps = (Step(0, anchor="h"), Step(1))
    with pytest.raises(ValueError, match=r"^decision 'skips' needs 2 anchors, 1 registered$"):
        Controller(Broken(), hidden_size=4).sample(1)


@pytest.mark.parametrize("preset", [p for p in __import__("torchnas.config", fromlist=["x"]).preset_names()
                                    if "reinforce" in (__import__("torchnas.config", fromlist=["x"]).load_preset(p)
                                                       .get("strategies") or {})])
def test_each_presets_controller_lstm_has_its_size_by_hand(preset):
    """Issue 16: the authors' common_ops.lstm has no bias ([x, h] @ w, melodyguan/enas
    src/common_ops.py; enas_lm controller.py _lstm), so enas-micro, enas-macro and enas-rnn build
    a bias-free controller LSTM; every
    other preset keeps nn.LSTMCell's two biases. Per layer: 4H x 2H weights (+ 8H biases)."""
    from torchnas.config import build_space, build_strategy, load_preset, resolve
    cfg = resolve(load_preset(preset), "reinforce")
    space = build_space(cfg)
    controller = build_strategy(cfg, space).controller
    settings = cfg["strategy"].get("controller") or {}
    H, L = settings.get("hidden_size", 64), settings.get("num_layers", 1)
    bias = settings.get("lstm_bias", True)
    assert bias is (preset not in ("enas-micro", "enas-macro", "enas-rnn"))
    assert sum(p.numel() for p in controller.lstm.parameters()) == L * (4 * H * 2 * H + (8 * H if bias else 0))
