"""ENAS recurrent cell space: decisions, controller program, arcs, standalone and shared cells."""
import random

import pytest
import torch

from torchnas.controller import Controller
from torchnas.spaces import (Anchor, ArchitectureError, Choice, ENASRNNSpace, get_space, space_from_config)
from torchnas.spaces.enas_rnn import PUBLISHED_ARC, loose_ends

SPACE = ENASRNNSpace()
I, H, B = 12, 16, 3


def _archs(n, seed=0, space=SPACE):
    rng = random.Random(seed)
    return [space.random(rng) for _ in range(n)]


# -- decisions and controller program ---------------------------------------------------------------
def test_decisions_and_program():
    d = SPACE.decisions
    assert len(d) == 16 and SPACE.num_nodes == 8
    for i in range(1, 9):
        prev, act = d[2 * (i - 1)], d[2 * (i - 1) + 1]
        assert isinstance(prev, Anchor) and prev.name == f"node{i}.prev" and prev.num_anchors == i
        assert isinstance(act, Choice) and act.name == f"node{i}.act" and act.kind == "act"
        assert act.options == ("tanh", "relu", "sigmoid", "identity")
    assert SPACE.choice_kinds() == {"act": 4}
    steps = SPACE.steps
    assert len(steps) == 1 + 2 * 8
    assert steps[0].decision is None and steps[0].anchor == "void"
    for i in range(8):
        assert steps[1 + 2 * i].decision == 2 * i and steps[1 + 2 * i].anchor == "h"
        assert steps[2 + 2 * i].decision == 2 * i + 1 and steps[2 + 2 * i].anchor is None
    assert SPACE.size() == 4 ** 8 * 40320
    assert get_space("enas-rnn", num_nodes=3).num_nodes == 3
    s = ENASRNNSpace(num_nodes=5, activations=("relu", "tanh"))
    assert space_from_config(s.config()).decisions == s.decisions


def test_controller_samples_valid_archs_and_log_prob_agrees():
    torch.manual_seed(0)
    ctrl = Controller(SPACE, temperature=5.0, tanh_constant=2.25)
    sample = ctrl.sample(16, generator=torch.Generator().manual_seed(1))
    for a in sample.archs:
        SPACE.check(a)
        assert SPACE.from_arc(SPACE.to_arc(a)) == a
    again = ctrl.log_prob(sample.archs)
    assert torch.allclose(sample.log_probs, again.log_probs, atol=1e-5)
    assert torch.all(sample.log_probs < 0)


# -- arcs -------------------------------------------------------------------------------------------
def test_published_arc_parses_and_round_trips():
    a = SPACE.from_arc(PUBLISHED_ARC)
    assert SPACE.to_arc(a) == PUBLISHED_ARC
    assert SPACE.parse(PUBLISHED_ARC) == a == SPACE.parse("enas-rnn: " + PUBLISHED_ARC)
    assert SPACE.nodes_of(a) == [(0, 2), (1, 0), (2, 1), (2, 2), (4, 0), (5, 0), (3, 2), (6, 2)]
    assert str(a) == ("enas-rnn:0,sigmoid,1,tanh,2,relu,2,sigmoid,4,tanh,5,tanh,3,sigmoid,6,sigmoid")
    assert SPACE.parse(str(a)) == a
    assert loose_ends(SPACE.nodes_of(a)) == [7, 8]
    for b in _archs(30):
        assert SPACE.from_arc(SPACE.to_arc(b)) == b and SPACE.parse(str(b)) == b


@pytest.mark.parametrize("arc, needle", [
    ("0 2 1 0", r"4 integers; expected 16"),
    ("1 2 1 0 2 1 2 2 4 0 5 0 3 2 6 2", r"node1\.prev.*0\.\.0"),
    ("0 2 1 0 3 1 2 2 4 0 5 0 3 2 6 2", r"node3\.prev.*0\.\.2"),
    ("0 2 1 0 2 1 2 2 4 0 5 0 3 2 6 4", r"node8\.act.*0\.\.3 \(0=tanh, 1=relu, 2=sigmoid, 3=identity\)"),
    ("0 2 1 x 2 1 2 2 4 0 5 0 3 2 6 2", r"node2\.act.*'x' is not an integer"),
    ("0 2 1 0 2 1 2 2 4 0 5 0 3 2 -1 2", r"node8\.prev"),
])
def test_bad_arcs(arc, needle):
    with pytest.raises(ArchitectureError, match=needle):
        SPACE.from_arc(arc)


def test_bad_space_prefix():
    with pytest.raises(ArchitectureError, match="not 'enas-rnn'"):
        SPACE.parse("enas-micro:" + PUBLISHED_ARC)


# -- cells ------------------------------------------------------------------------------------------
def test_cell_equations_by_hand():
    torch.manual_seed(0)
    space = ENASRNNSpace(num_nodes=2)
    a = space.from_arc("0 1 0 2")          # node1 <- 0 relu, node2 <- 0 sigmoid
    cell = space.child(a, I, H)
    x, h = torch.randn(B, I), torch.randn(B, H)
    z = torch.cat([x, h], 1) @ cell.w_prev
    c0 = torch.sigmoid(z[:, H:])
    s0 = c0 * torch.tanh(z[:, :H]) + (1 - c0) * h
    z1, z2 = s0 @ cell.w[0], s0 @ cell.w[1]
    s1 = torch.sigmoid(z1[:, H:]) * torch.relu(z1[:, :H]) + (1 - torch.sigmoid(z1[:, H:])) * s0
    s2 = torch.sigmoid(z2[:, H:]) * torch.sigmoid(z2[:, :H]) + (1 - torch.sigmoid(z2[:, H:])) * s0
    assert torch.allclose(cell(x, h), (s1 + s2) / 2, atol=1e-6)
    assert not any("bias" in n for n, _ in cell.named_parameters())


def test_hidden_state_shape_and_loose_ends_vs_average():
    torch.manual_seed(0)
    pub = SPACE.from_arc(PUBLISHED_ARC)
    avg, loose = SPACE.child(pub, I, H), SPACE.child(pub, I, H, output="loose_ends")
    loose.load_state_dict(avg.state_dict())
    x, h = torch.randn(B, I), torch.randn(B, H)
    out = avg(x, h)
    assert out.shape == (B, H)
    assert not torch.allclose(out, loose(x, h))          # loose ends 7, 8 vs nodes 1..8
    star = SPACE.from_arc(" ".join(f"0 {k % 4}" for k in range(8)))   # every node reads node 0
    avg2, loose2 = SPACE.child(star, I, H), SPACE.child(star, I, H, output="loose_ends")
    loose2.load_state_dict(avg2.state_dict())
    assert torch.allclose(avg2(x, h), loose2(x, h))
    with pytest.raises(ValueError, match="output"):
        SPACE.child(pub, I, H, output="last")


@pytest.mark.parametrize("output", ["average", "loose_ends"])
def test_shared_and_child_compute_the_same_over_time(output):
    torch.manual_seed(0)
    shared = SPACE.shared(I, H, output=output)
    xs = torch.randn(5, B, I)
    for a in _archs(4, seed=1) + [SPACE.from_arc(PUBLISHED_ARC)]:
        child = SPACE.child_from_shared(shared, a)
        assert child.output == output
        hs = hc = torch.zeros(B, H)
        for x in xs:
            hs, hc = shared(x, hs, a), child(x, hc)
            assert hs.shape == (B, H)
            assert torch.allclose(hs, hc, atol=1e-6)
    # the dropout masks enter both the same way
    a = _archs(1, seed=7)[0]
    child = SPACE.child_from_shared(shared, a)
    xm, hm = (torch.rand(B, I) > 0.5).float(), (torch.rand(B, H) > 0.5).float()
    h0 = torch.randn(B, H)
    assert torch.allclose(shared(xs[0], h0, a, xm, hm), child(xs[0], h0, xm, hm), atol=1e-6)


def test_shared_weight_layout():
    shared = SPACE.shared(I, H)
    assert tuple(shared.w_prev.shape) == (I + H, 2 * H)
    assert len(shared.w) == 4 * sum(range(1, 9)) and all(tuple(w.shape) == (H, 2 * H) for w in shared.w)
    assert [tuple(shared.layer(l).shape) for l in range(1, 9)] == [(4, l, H, 2 * H) for l in range(1, 9)]
    assert sum(w.numel() for w in shared.w) == 4 * sum(range(1, 9)) * H * 2 * H
    # the same initial values as the reference's one [A, l, H, 2H] tensor per node, drawn in order
    torch.manual_seed(5)
    shared = SPACE.shared(I, H)
    torch.manual_seed(5)
    ref_prev = torch.empty(I + H, 2 * H).uniform_(-0.04, 0.04)
    ref = [torch.empty(4, l, H, 2 * H).uniform_(-0.04, 0.04) for l in range(1, 9)]
    assert torch.equal(shared.w_prev, ref_prev) and all(torch.equal(shared.layer(l), ref[l - 1]) for l in range(1, 9))
    assert torch.equal(shared.w[shared.index(3, 2, 1)], ref[2][2, 1])


def test_only_the_sampled_path_gets_gradients():
    torch.manual_seed(0)
    shared = SPACE.shared(I, H)
    for a in _archs(3, seed=3):
        shared.zero_grad(set_to_none=True)
        h = torch.zeros(B, H)
        for x in torch.randn(3, B, I):
            h = shared(x, h, a)
        h.pow(2).sum().backward()
        assert shared.w_prev.grad.abs().sum() > 0
        used = {shared.index(l, f, p) for l, (p, f) in enumerate(SPACE.nodes_of(a), 1)}
        for k, w in enumerate(shared.w):        # a gradient only where the cell runs: none allocated elsewhere
            assert (w.grad is not None and w.grad.abs().sum() > 0) if k in used else w.grad is None


@pytest.mark.parametrize("upto,output,masked", [(5, "average", True), (2, "average", True),
                                                (5, "loose_ends", True), (5, "average", False)])
def test_window_gradients_equal_step_by_step_autograd(upto, output, masked):
    """``run`` (a language model's window) is one hand-written autograd node for the window
    (``_CellWindow``, issue 15); the reference is plain autograd through ``forward``, one step at
    a time, with the same dropout masks: the same outputs (to float rounding: bit for bit on one
    machine, 1.5e-8 apart on an AVX-512 one, whose products sum in another order) and the same
    gradients of every weight, of the inputs and of the first state. ``upto=2``: a loss on the first steps
    only, so the later steps get no output gradient at all. The cells use all four activations."""
    torch.manual_seed(0)
    space = ENASRNNSpace(num_nodes=8)
    shared = space.shared(I, H, output=output)
    a = space.parse_arc("0 0 1 1 2 2 0 3 4 1 3 2 6 3 5 0")
    assert {act for _, act in space.nodes_of(a)} == {0, 1, 2, 3} and len(loose_ends(space.nodes_of(a))) > 1
    xs0, h00 = torch.randn(5, B, I), torch.randn(B, H)
    xm, hm = ((torch.rand(B, I) > 0.3).float() / 0.7, (torch.rand(B, H) > 0.3).float() / 0.7) if masked else (None, None)
    with torch.no_grad():
        shared.w[shared.index(2, 1, 1)].mul_(8)           # a relu node with pre-activations of both signs

    def grads(outs, xs, h0):
        shared.zero_grad(set_to_none=True)
        (outs[:upto] * torch.linspace(-1, 1, H)).pow(2).sum().backward()
        got = {n: p.grad.clone() for n, p in shared.named_parameters() if p.grad is not None}
        return {**got, "x": xs.grad, "h0": h0.grad}

    xs, h0 = xs0.clone().requires_grad_(), h00.clone().requires_grad_()
    h, ref_outs = h0, []
    for x in xs:
        h = shared(x, h, a, xm, hm)
        ref_outs.append(h)
    ref = grads(torch.stack(ref_outs), xs, h0)
    xs, h0 = xs0.clone().requires_grad_(), h00.clone().requires_grad_()
    outs, last = shared.run(shared.project_inputs(xs, xm), h0, shared.plan(a), hm)
    torch.testing.assert_close(outs, torch.stack(ref_outs).detach(), rtol=1e-6, atol=1e-7)
    assert torch.equal(last, outs[-1])
    got = grads(outs, xs, h0)
    assert sorted(got) == sorted(ref) and len(ref) == 3 + space.num_nodes      # w_prev, the used matrices, x, h0
    for n in ref:
        torch.testing.assert_close(got[n], ref[n], rtol=1e-5, atol=1e-6, msg=n)
    with torch.no_grad():                                   # no gradient: one step's buffers, same outputs
        torch.testing.assert_close(shared.run(shared.project_inputs(xs0, xm), h00, shared.plan(a), hm)[0],
                                   outs.detach(), rtol=1e-6, atol=1e-7)


def test_window_refuses_a_second_backward_pass():
    """``_CellWindow`` consumes its buffers in its backward pass: a second pass through the same
    graph (``retain_graph=True``) is one clear error, not a wrong gradient."""
    torch.manual_seed(0)
    shared = SPACE.shared(I, H)
    a = _archs(1, seed=2)[0]
    outs, _ = shared.run(shared.project_inputs(torch.randn(3, B, I)), torch.zeros(B, H), shared.plan(a))
    outs.sum().backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="a second backward pass through the same graph is not supported"):
        outs.sum().backward()
