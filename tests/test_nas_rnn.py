"""Zoph & Le's recurrent-cell tree space (issue 30): Fig. 5's worked example and TensorFlow's
NASCell, each written out by hand here and compared with the space's cell."""
import pytest
import torch

from torchnas.spaces import ArchitectureError, get_space
from torchnas.spaces.nas_rnn import NAS_CELL, parameter_count

FIG5 = "nas-rnn:add,tanh,elem_mult,relu,elem_mult,sigmoid,add,relu,1,0"


def _weights(cell, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in cell.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.7)


def test_fig5_base2_cell_computes_the_papers_equations():
    """Zoph & Le §3.4, Fig. 5 (base 2): tree index 0 (add, tanh), 1 (elem_mult, relu), 2
    (elem_mult, sigmoid); cell inject (add, relu); cell indices 1, 0. The paper's equations:
    a0 = tanh(W1 x + W2 h); a1 = relu(W3 x ⊙ W4 h); a0' = relu(a0 + c_{t-1});
    a2 = sigmoid(a0' ⊙ a1) = h_t; c_t = W3 x ⊙ W4 h (node 1 before its activation)."""
    space = get_space("nas-rnn", base=2)
    arch = space.parse(FIG5)
    assert len(space.decisions) == 10 and str(arch) == FIG5       # 4·base + 2 predictions
    I, H, B = 3, 5, 4
    cell = space.child(arch, I, H)
    _weights(cell)
    W1, W3 = cell.w_x[:, :H], cell.w_x[:, H:]
    W2, W4 = cell.w_h[:, :H], cell.w_h[:, H:]
    g = torch.Generator().manual_seed(1)
    x, h, c = (torch.randn(B, n, generator=g) for n in (I, H, H))
    a0 = torch.tanh(x @ W1 + h @ W2)
    a1 = torch.relu((x @ W3) * (h @ W4))
    a0_new = torch.relu(a0 + c)
    a2 = torch.sigmoid(a0_new * a1)
    out, (h_t, c_t) = cell.recur(cell.project_inputs(x), (h, c))
    torch.testing.assert_close(out, a2)
    torch.testing.assert_close(h_t, a2)
    torch.testing.assert_close(c_t, (x @ W3) * (h @ W4))
    assert sum(p.numel() for p in cell.parameters()) == 2 * H * (I + H) == parameter_count(2, I, H)


def _nas_cell_by_hand(x, c, h, kernel, recurrent, bias):
    """TensorFlow Addons' NASCell (rnn/nas_cell.py), one step, written out: kernels ``[I, 8U]``
    and ``[U, 8U]``, one bias on the recurrent side, both products cut into 8 blocks."""
    X = (x @ kernel).chunk(8, -1)
    Hh = (h @ recurrent + bias).chunk(8, -1)
    s, r, t = torch.sigmoid, torch.relu, torch.tanh
    l1 = [s(X[0] + Hh[0]), r(X[1] + Hh[1]), s(X[2] + Hh[2]), r(X[3] * Hh[3]),
          t(X[4] + Hh[4]), s(X[5] + Hh[5]), t(X[6] + Hh[6]), s(X[7] + Hh[7])]
    l2 = [t(l1[0] * l1[1]), t(l1[2] + l1[3]), t(l1[4] * l1[5]), s(l1[6] + l1[7])]
    l2_0 = t(l2[0] + c)                     # the cell injection
    c_new = l2_0 * l2[1]
    l3_1 = t(l2[2] + l2[3])
    h_new = t(c_new * l3_1)
    return h_new, c_new


@pytest.mark.parametrize("bias", [False, True])
def test_the_papers_cell_is_tensorflows_nas_cell(bias):
    space = get_space("nas-rnn")
    arch = space.parse(NAS_CELL)
    I, U, B = 7, 6, 3
    cell = space.child(arch, I, U, bias=bias)
    _weights(cell, seed=2)
    g = torch.Generator().manual_seed(3)
    x, h, c = (torch.randn(B, n, generator=g) for n in (I, U, U))
    b = cell.bias if bias else torch.zeros(8 * U)
    want_h, want_c = _nas_cell_by_hand(x, c, h, cell.w_x, cell.w_h, b)
    out, (h_t, c_t) = cell.recur(cell.project_inputs(x), (h, c))
    torch.testing.assert_close(h_t, want_h)
    torch.testing.assert_close(c_t, want_c)
    # NASCell's parameters: 8U·I + 8U·U (+ 8U bias)
    assert sum(p.numel() for p in cell.parameters()) == 8 * U * I + 8 * U * U + 8 * U * bias == parameter_count(8, I, U, bias)


def test_nas_cell_reproduces_tensorflow_addons_test_values():
    """Addons' nas_cell_test ``test_base``: 6 units, input 4, every kernel 0.5, c = h = 0.1,
    inputs of ones, twos and threes: outputs 0.576751, 0.618936, 0.627393 and new c 0.7157977,
    0.7804162, 0.7945764 in every unit."""
    space = get_space("nas-rnn")
    cell = space.child(space.parse(NAS_CELL), 4, 6)
    with torch.no_grad():
        cell.w_x.fill_(0.5)
        cell.w_h.fill_(0.5)
    x = torch.tensor([[1.0] * 4, [2.0] * 4, [3.0] * 4])
    h = c = torch.full((3, 6), 0.1)
    out, (_, c_t) = cell.recur(cell.project_inputs(x), (h, c))
    torch.testing.assert_close(out, torch.tensor([[0.576751], [0.618936], [0.627393]]).expand(3, 6), atol=1e-6, rtol=0)
    torch.testing.assert_close(c_t, torch.tensor([[0.7157977], [0.7804162], [0.7945764]]).expand(3, 6), atol=1e-6, rtol=0)


def test_base_8_space_has_the_papers_size_and_decision_order():
    space = get_space("nas-rnn")
    assert space.num_nodes == 15 and len(space.decisions) == 34
    assert space.size() == 8 ** 15 * 8 * 15 ** 2 == 63_331_869_759_897_600        # "6 × 10^16"
    names = [d.name for d in space.decisions]
    assert names[:4] == ["node0.combine", "node0.act", "node1.combine", "node1.act"]
    assert names[-4:] == ["inject.combine", "inject.act", "cell_index", "inject_index"]
    t = space.tree(space.parse(NAS_CELL))
    assert t.inputs[8] == (0, 1) and t.inputs[12] == (8, 9) and t.inputs[14] == (12, 13)
    assert (t.cell_index, t.inject_index, t.inject) == (12, 8, ("add", "tanh"))


def test_a_language_model_runs_the_cell_over_time():
    space = get_space("nas-rnn", base=2)
    lm = space.language_model(space.parse(FIG5), 13, hidden_size=5).eval()
    tokens = torch.randint(0, 13, (6, 2))
    out = lm(tokens)
    assert out.logits.shape == (6, 2, 13) and torch.isfinite(out.logits).all()
    h, c = lm.init_state(2)          # the same steps by hand through the cell
    x = torch.nn.functional.embedding(tokens, lm.embedding)
    for t in range(6):
        o, (h, c) = lm.cell.recur(lm.cell.project_inputs(x[t]), (h, c))
    torch.testing.assert_close(out.state[0], h)
    torch.testing.assert_close(out.state[1], c)


@pytest.mark.parametrize("settings, match", [
    ({"base": 6}, "power of two"), ({"base": 1}, "power of two"),
    ({"activations": ["tanh", "gelu"]}, "activations must be some of"),
    ({"combinations": []}, "combinations must be some of")])
def test_bad_space_settings_are_named(settings, match):
    with pytest.raises(ValueError, match=match):
        get_space("nas-rnn", **settings)


def test_a_wrong_index_names_the_decision():
    with pytest.raises(ArchitectureError, match="inject_index"):
        get_space("nas-rnn", base=2).parse("nas-rnn:add,tanh,elem_mult,relu,elem_mult,sigmoid,add,relu,1,3")
