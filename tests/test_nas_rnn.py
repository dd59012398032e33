"""Zoph & Le's recurrent-cell tree space (issue 30): Fig. 5's worked example and TensorFlow's
NASCell, each written out by hand here and compared with the space's cell."""
import pytest
import torch

from torchnas.spaces import ArchitectureError, get_space
from torchnas.spaces.nas_rnn import NAS_CELL, NASRNNSpace, parameter_count

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


def test_a_two_layer_language_model_runs_the_cells_over_time_one_above_the_other():
    """Zoph & Le's children have two layers: layer 2 reads layer 1's outputs; the state is
    (h1, c1, h2, c2); the softmax is tied to the embedding."""
    space = get_space("nas-rnn", base=2)
    lm = space.language_model(space.parse(FIG5), 13, hidden_size=5).eval()
    tokens = torch.randint(0, 13, (6, 2), generator=torch.Generator().manual_seed(0))
    out = lm(tokens)
    assert out.logits.shape == (6, 2, 13) and len(out.state) == 4
    h1, c1, h2, c2 = lm.init_state(2)                  # the same steps by hand
    x = torch.nn.functional.embedding(tokens, lm.embedding)
    first, second = lm.cell.cells
    ys = []
    for t in range(6):
        y1, (h1, c1) = first.recur(first.project_inputs(x[t]), (h1, c1))
        y2, (h2, c2) = second.recur(second.project_inputs(y1), (h2, c2))
        ys.append(y2)
    for got, want in zip(out.state, (h1, c1, h2, c2)):
        torch.testing.assert_close(got, want)
    torch.testing.assert_close(out.logits, torch.stack(ys) @ lm.embedding.t())
    one = space.language_model(space.parse(FIG5), 13, hidden_size=5, num_layers=1)
    assert sum(p.numel() for p in lm.parameters()) - sum(p.numel() for p in one.parameters()) == 2 * 5 * 10


def test_dropout_between_layers_is_one_mask_a_window_in_training_only():
    space = get_space("nas-rnn", base=2)
    lm = space.language_model(space.parse(FIG5), 13, hidden_size=5, layer_dropout=0.5)
    tokens = torch.randint(0, 13, (4, 3))
    torch.manual_seed(0)
    a = lm(tokens).logits
    torch.manual_seed(1)
    assert not torch.allclose(a, lm(tokens).logits)      # a new mask each window
    lm.eval()
    torch.testing.assert_close(lm(tokens).logits, lm(tokens).logits)
    with pytest.raises(ValueError, match="between layers"):
        space.language_model(space.parse(FIG5), 13, hidden_size=5, layer_dropout=1.0)


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


def test_final_preset_dry_run_prints_the_papers_54m_model_and_its_arithmetic(capsys):
    """Zoph & Le Table 2: 54 M parameters with shared embeddings; two layers of H = 1,152."""
    from torchnas.cli import main
    assert main(["train", "--preset", "nas-rnn-final", "--dry-run"]) == 0
    out = capsys.readouterr().out
    total = 10_000 * 1152 + 2 * 8 * 1152 * 2 * 1152
    assert total == 53_987_328 and f"parameters: {total:,}" in out and NAS_CELL in out
    assert f"= 10,000 x 1,152 (the embedding, tied to the softmax) + 2 layers x 8 leaves x 1,152 x (1,152 + 1,152)" in out


def test_final_preset_trains_the_nas_cell_and_enas_models_take_it_as_a_baseline(tmp_path, capsys, one_thread):
    import json
    from torchnas.cli import main
    from tests.test_lm import _write_corpus
    ptb = _write_corpus(tmp_path / "ptb")
    small = ["--data-dir", str(ptb), "--set", "final_net.hidden_size=8", "--set", "train.batch_size=8",
             "--set", "train.epochs=3", "--quiet"]
    # at width 8 two stacked NAS cells learn only from large weights: their products of small
    # values vanish (with the preset's 0.04 the toy corpus stays at the uniform 17)
    learnable = ["--set", "final_net.init_range=1.0", "--set", "final_net.dropout={}", "--set", "final_net.layer_dropout=0"]
    assert main(["train", "--preset", "nas-rnn-final", "--out", str(tmp_path / "nas")] + small + learnable) == 0
    res = json.loads((tmp_path / "nas" / "result.json").read_text())
    assert res["cell"] == "nas-rnn" and res["arch"] == NAS_CELL and 1 < res["test_ppl"] < 14
    space = get_space("nas-rnn")
    model = space.language_model(space.parse(NAS_CELL), 17, hidden_size=8)
    model.load_state_dict(torch.load(tmp_path / "nas" / "model.pt"))        # two stacked NAS cells, whole
    assert res["params"] == sum(p.numel() for p in model.parameters()) == parameter_count(8, 8, 8) * 2 + 17 * 8
    assert main(["train", "--preset", "enas-rnn-tiny", "--arc", "0 0 1 1 1 2 3 3 2 0 5 1 6 2 7 3", "--set",
                 "final_net.cell=nas", "--set", "final_net.init_range=0.3", "--out", str(tmp_path / "baseline")]
                + small) == 0
    base = json.loads((tmp_path / "baseline" / "result.json").read_text())
    assert base["cell"] == "nas" and base["params"] == parameter_count(8, 8, 8) + 17 * 8 and base["test_ppl"] < 14
    capsys.readouterr()
    assert main(["show", str(tmp_path / "baseline")]) == 0
    assert "NAS cell (baseline)" in capsys.readouterr().out


def test_a_search_trains_each_child_from_scratch_and_rewards_it_80_over_its_perplexity_squared(tmp_path, one_thread):
    """Zoph & Le §4.2: children trained from scratch, reward c / ppl² (c = 80); the run's best
    cell is retrained by the preset's final settings."""
    import json
    from torchnas.cli import main
    from torchnas.evaluators import make_evaluator
    from tests.test_lm import _write_corpus
    ptb = _write_corpus(tmp_path / "ptb")
    run = tmp_path / "run"
    assert main(["search", "--preset", "nas-rnn-tiny", "--data-dir", str(ptb), "--queries", "3", "--out", str(run),
                 "--set", "evaluator.net.hidden_size=6", "--set", "evaluator.batch_size=8",
                 "--set", "final_net.hidden_size=6", "--set", "train.epochs=1", "--set", "train.batch_size=8",
                 "--set", "strategies.reinforce.batch_size=3", "--quiet"]) == 0
    evals = [json.loads(line) for line in (run / "evaluations.jsonl").read_text().splitlines()]
    assert len(evals) == 3
    for e in evals:
        assert e["reward"] == pytest.approx(80.0 / e["metrics"]["valid_ppl"] ** 2) and 1 < e["metrics"]["valid_ppl"] < 100
    again = make_evaluator("lm-trainer", get_space("nas-rnn"), None, 0, data={"name": "ptb", "path": str(ptb)},
                           net={"hidden_size": 6, "num_layers": 2, "init_range": 0.3}, epochs=1, batch_size=8)
    assert again.evaluate(get_space("nas-rnn").parse(evals[0]["arch"])).reward == evals[0]["reward"]   # seeded by the cell
    best = json.loads((run / "best.json").read_text())
    assert best["reward"] == max(e["reward"] for e in evals)
    assert json.loads((run / "retrain" / "result.json").read_text())["arch"] == best["arch"]


@pytest.mark.parametrize("ppl, reward", [(1e200, 0.0), (float("inf"), 0.0), (float("nan"), 0.0), (4.0, 5.0)])
def test_a_child_whose_perplexity_overflows_gets_reward_0_not_an_error(ppl, reward, tmp_path, monkeypatch):
    """Found by the first nas-rnn-tiny search on PTB: a child's validation perplexity of about
    1e200 made c / ppl² overflow and ended the search. c / ppl / ppl underflows to 0 instead;
    an infinite or undefined perplexity is reward 0 with the reason."""
    from torchnas.evaluators import make_evaluator
    from torchnas.training.language import LMTraining
    from tests.test_lm import _write_corpus
    ptb = _write_corpus(tmp_path / "ptb", n_lines=40)
    monkeypatch.setattr(LMTraining, "evaluate", lambda self, split: {"ppl": ppl})
    ev = make_evaluator("lm-trainer", get_space("nas-rnn", base=2), None, 0, data={"name": "ptb", "path": str(ptb)},
                        net={"hidden_size": 4}, epochs=1, batch_size=4, reward_constant=80.0).evaluate(
        get_space("nas-rnn", base=2).parse(FIG5))
    assert ev.reward == reward
    assert ev.metrics.get("diverged", False) == (not ppl < float("inf"))


def test_the_lstm_baseline_stacks_lstm_cells_counts_them_and_exports(tmp_path):
    """``final_net.cell: lstm`` on nas-rnn: two stacked LSTM cells of the same size (the benchmark's
    baseline), its parameter arithmetic equal to the built model's count, and its python export
    (each cell writes its own code) reproducing its logits; an unknown cell is named."""
    from torchnas.export import export_model
    from torchnas.nn.lm import LSTMCell, StackedCells
    space = NASRNNSpace(base=2)
    torch.manual_seed(0)
    lm = space.language_model(None, 11, hidden_size=6, init_range=0.5, cell="lstm")
    assert isinstance(lm.cell, StackedCells) and all(isinstance(c, LSTMCell) for c in lm.cell.cells)
    total, text = space.parameter_arithmetic(11, {"hidden_size": 6, "cell": "lstm"})
    assert total == sum(p.numel() for p in lm.parameters()) == 11 * 6 + 2 * 4 * 6 * (6 + 6 + 1)
    assert text.endswith(f"= {total:,}")
    record = export_model(lm.eval(), (torch.randint(0, 11, (5, 3)),), tmp_path, formats=("python",))
    assert record["formats"]["python"]["max_abs_diff"] < 1e-5
    with pytest.raises(ValueError, match="'nas-rnn' .* or 'lstm', not 'gru'"):
        space.language_model(None, 11, hidden_size=6, cell="gru")
