"""The language model around the ENAS recurrent cell, exact perplexity, LM training and the
ENAS loop for the recurrent cell (google-research enas_lm)."""
import json
import math
import random
import time

import pytest
import torch
import torch.nn.functional as F

from tests.conftest import kill_on_call
from torchnas import api
from torchnas.cli import main
from torchnas.data.ptb import Corpus, load_ptb
from torchnas.enas import ENASSearch, make_enas
from torchnas.tasks.language import LMSharedWeights
from torchnas.training import LMTraining, perplexity
from torchnas.nn.lm import LSTMCell
from torchnas.runs import RunDir
from torchnas.spaces import ENASRNNSpace
from torchnas.spaces.enas_rnn import PUBLISHED_ARC
from torchnas.strategies import RandomSearch, Reinforce

SPACE = ENASRNNSpace(num_nodes=4)
ARC = SPACE.from_arc("0 0 1 1 1 2 3 3")
DROP = {"word": 0.1, "embedding": 0.2, "input": 0.5, "hidden": 0.25, "output": 0.5}


def _stream(n, vocab=12, seed=0):
    rng = random.Random(seed)
    return torch.tensor([rng.randrange(vocab) for _ in range(n)])


def _write_corpus(path, n_lines=300, seed=0):
    """A learnable toy corpus in the PTB layout: each line walks a fixed cycle of 16 words."""
    rng = random.Random(seed)
    words = [f"w{k}" for k in range(16)]

    def lines(n):
        out = []
        for _ in range(n):
            start = rng.randrange(16)
            out.append(" ".join(words[(start + k) % 16] for k in range(rng.randrange(4, 9))))
        return "\n".join(out) + "\n"
    path.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_lines), ("valid", n_lines // 5), ("test", n_lines // 5)):
        (path / f"ptb.{split}.txt").write_text(lines(n))
    return path


# -- the model ---------------------------------------------------------------------------------------
def test_shapes_state_and_tied_softmax():
    torch.manual_seed(0)
    lm = SPACE.language_model(ARC, 12, 8, dropout=DROP)
    tokens = _stream(5 * 3).view(5, 3)
    out = lm(tokens)
    assert out.logits.shape == (5, 3, 12) and out.outputs.shape == (5, 3, 8) and out.state.shape == (3, 8)
    assert not any("bias" in n for n, _ in lm.named_parameters())
    lm.eval()
    out = lm(tokens)
    assert torch.allclose(out.logits, out.outputs @ lm.embedding.t(), atol=1e-6)    # tied, no bias
    assert torch.allclose(out.state, out.outputs[-1])                               # output = next state
    # carrying the state: two windows = one long window
    a = lm(tokens[:2])
    b = lm(tokens[2:], a.state)
    assert torch.allclose(torch.cat([a.logits, b.logits]), out.logits, atol=1e-5)


def test_shared_and_standalone_language_models_agree():
    torch.manual_seed(0)
    shared = SPACE.language_model(None, 12, 8, dropout=DROP)
    for arch in (ARC, SPACE.random(random.Random(3))):
        child = SPACE.language_model(arch, 12, 8, dropout=DROP)
        child.cell.load_state_dict(SPACE.child_from_shared(shared.cell, arch).state_dict())
        child.embedding.data.copy_(shared.embedding)
        tokens = _stream(24).view(6, 4)
        shared.eval(), child.eval()
        assert torch.allclose(shared(tokens, None, arch).logits, child(tokens).logits, atol=1e-5)
        shared.train(), child.train()
        torch.manual_seed(1)
        s = shared(tokens, None, arch).logits
        torch.manual_seed(1)
        assert torch.allclose(s, child(tokens).logits, atol=1e-5)      # the same dropout masks too
    with pytest.raises(ValueError, match="architecture"):
        shared(_stream(4).view(2, 2))


def test_word_dropout_drops_whole_embedding_rows(monkeypatch):
    torch.manual_seed(0)
    lm = SPACE.language_model(ARC, 6, 8, dropout={"word": 0.5})
    seen = {}
    real = lm.cell.project_inputs
    monkeypatch.setattr(lm.cell, "project_inputs", lambda x, m=None: seen.setdefault("x", x) is not None and real(x, m))
    tokens = torch.arange(6).repeat(8).view(8, 6)          # every word in every column
    lm.train()
    lm(tokens)
    x = seen["x"]
    for w in range(6):
        rows = x[tokens == w]                                # all occurrences of word w
        dropped = rows.abs().sum(1) == 0
        assert dropped.all() or (~dropped).all()             # the whole row, everywhere
        if not dropped.any():
            assert torch.allclose(rows, 2 * lm.embedding[w].expand_as(rows))   # rescaled by 1/(1-p)


def test_dropout_settings_are_checked():
    with pytest.raises(ValueError, match="unknown dropout 'recurrent'"):
        SPACE.language_model(ARC, 10, 4, dropout={"recurrent": 0.1})
    with pytest.raises(ValueError, match="rate in"):
        SPACE.language_model(ARC, 10, 4, dropout={"output": 1.0})
    with pytest.raises(ValueError, match="'enas'.*'lstm'"):
        SPACE.language_model(ARC, 10, 4, cell="gru")


# -- exact perplexity ---------------------------------------------------------------------------------
@pytest.mark.parametrize("batch_size", [1, 3, 7])
def test_uniform_model_has_perplexity_equal_to_the_vocabulary(batch_size):
    lm = SPACE.language_model(ARC, 37, 8)
    lm.embedding.data.zero_()                            # logits all zero: the uniform distribution
    stream = _stream(101, vocab=37)
    r = perplexity(lm, stream, batch_size=batch_size, bptt=9)
    assert r["tokens"] == 100                            # every token after the first, once
    assert r["ppl"] == pytest.approx(37.0, rel=1e-5)


def test_perplexity_is_sequential_and_independent_of_windowing():
    torch.manual_seed(0)
    lm = SPACE.language_model(ARC, 12, 8)
    stream = _stream(58)
    lm.eval()
    with torch.no_grad():                                # the definition: one token at a time, state carried
        state, total = lm.init_state(1), 0.0
        for t in range(len(stream) - 1):
            out = lm(stream[t].view(1, 1), state)
            state = out.state
            total -= torch.log_softmax(out.logits[0, 0], -1)[stream[t + 1]].item()
    exact = math.exp(total / (len(stream) - 1))
    assert perplexity(lm, stream, 1, bptt=35)["ppl"] == pytest.approx(exact, rel=1e-5)
    for B in (3, 5):            # batched: the same for any window length (the state is carried)
        ref = perplexity(lm, stream, B, bptt=35)
        assert perplexity(lm, stream, B, bptt=4)["ppl"] == pytest.approx(ref["ppl"], rel=1e-5)
        assert ref["tokens"] == 57
    assert lm.training is False


# -- training -----------------------------------------------------------------------------------------
def test_training_learns_and_resumes_exactly(tmp_path, one_thread):
    corpus = load_ptb(path=_write_corpus(tmp_path / "ptb"))
    V = len(corpus)
    settings = dict(batch_size=8, bptt=10, lr=5.0, grad_clip=0.25, weight_decay=1e-6, alpha=0.1, beta=0.1,
                    eval_batch_size=4, test_batch_size=1, seed=3, device="cpu")

    def fresh():
        torch.manual_seed(0)
        return LMTraining(SPACE.language_model(ARC, V, 16, dropout=DROP), corpus, epochs=3, **settings)
    ref = fresh()
    start = ref.evaluate("valid")["ppl"]
    losses = [ref.train_epoch()["loss"] for _ in range(3)]
    end = ref.evaluate("valid")["ppl"]
    assert start > 0.8 * V and end < 0.5 * start and losses[-1] < losses[0]
    part = fresh()
    part.train_epoch()
    state = part.state_dict()
    torch.manual_seed(123)                               # a new process would have another RNG state
    resumed = fresh()
    resumed.load_state_dict(state)
    assert [resumed.train_epoch()["loss"] for _ in range(2)] == losses[1:]
    assert resumed.evaluate("valid")["ppl"] == end


def test_nt_asgd_starts_averaging_when_validation_stalls():
    corpus = Corpus(["a", "b"], {"a": 0, "b": 1}, _stream(400, 2), _stream(50, 2), _stream(50, 2))
    t = LMTraining(SPACE.language_model(ARC, 2, 4), corpus, batch_size=4, bptt=5, average="nt-asgd", nonmono=2,
                   device="cpu")
    assert [t.end_epoch(p) for p in (10.0, 9.0, 8.0, 7.0)] == [False] * 4
    assert t.end_epoch(9.5) is True and t.avg is not None   # worse than the best before the last two
    at_trigger = [p.detach().clone() for p in t.model.parameters()]
    snapshots = []          # fixed.py: the average starts from the first step after the trigger
    step = t.opt.step

    def step_and_record(*a, **k):
        out = step(*a, **k)
        snapshots.append([p.detach().clone() for p in t.model.parameters()])
        return out
    t.opt.step = step_and_record
    t.train_epoch()
    assert len(snapshots) > 3 and t.avg_steps == len(snapshots)
    for k, a in enumerate(t.avg):                        # the uniform mean of every step's weights since
        assert torch.allclose(a, torch.stack([snap[k] for snap in snapshots]).mean(0), atol=1e-6)
        with_trigger = torch.stack([at_trigger[k]] + [snap[k] for snap in snapshots]).mean(0)
        assert not torch.allclose(a, with_trigger, atol=1e-6)      # ... without the weights at the trigger
    current = [p.detach().clone() for p in t.model.parameters()]
    v = t.evaluate("valid")                              # evaluated with the average ...
    with torch.no_grad():
        for p, a in zip(t.model.parameters(), t.avg):
            p.copy_(a)
    assert v["ppl"] == pytest.approx(perplexity(t.model, corpus.valid, t.eval_batch_size, t.bptt)["ppl"], rel=1e-6)
    with torch.no_grad():
        for p, c in zip(t.model.parameters(), current):
            p.copy_(c)
    t.evaluate("valid")                                  # ... and the weights put back afterwards
    assert all(torch.equal(p, c) for p, c in zip(t.model.parameters(), current))
    with pytest.raises(ValueError, match="nt-asgd"):
        LMTraining(SPACE.language_model(ARC, 2, 4), corpus, average="swa")


def test_plain_lstm_baseline_has_the_cell_interface():
    torch.manual_seed(0)
    lm = SPACE.language_model(None, 12, 8, cell="lstm")
    assert isinstance(lm.cell, LSTMCell)
    out = lm(_stream(12).view(4, 3))
    assert out.logits.shape == (4, 3, 12) and isinstance(out.state, tuple)
    lm.embedding.data.zero_()
    assert perplexity(lm, _stream(30), 4, 5)["ppl"] == pytest.approx(12.0, rel=1e-5)


# -- the ENAS loop for the recurrent cell ---------------------------------------------------------------
TINY = dict(net={"hidden_size": 12, "dropout": DROP}, epochs=2, batch_size=8, bptt=10, lr=5.0, train_steps=2,
            reward_batch=4, derive_samples=6, keep=3, device="cpu")
REINFORCE = dict(batch_size=3, lr=0.01, baseline_decay=0.9, baseline_update="sample", entropy_weight=1e-5,
                 controller={"hidden_size": 16, "temperature": 5.0, "tanh_constant": 2.25,
                             "anchor_distance_bias": 1 / 6, "anchor_input_offset": 0.1})


def _lm_search(tmp_path, name, data, **kw):
    run = RunDir(tmp_path / name)
    if not (run.path / RunDir.CONFIG).exists():
        run.create({"test": True})
    return ENASSearch(SPACE, Reinforce(SPACE, seed=1, **REINFORCE), seed=1, run_dir=run, data=data,
                        **{**TINY, **kw}).resume()


def test_enas_rnn_search_trains_and_resumes_exactly(tmp_path, monkeypatch, one_thread):
    data = {"name": "ptb", "path": str(_write_corpus(tmp_path / "ptb"))}
    ref = _lm_search(tmp_path, "ref", data, epochs=3)
    before = {k: v.clone() for k, v in ref.strategy.controller.state_dict().items()}
    ref_derived = ref.run()
    assert len(ref_derived) == 3 and ref_derived[0]["reward"] >= ref_derived[-1]["reward"]
    assert ref_derived[0]["valid_ppl"] == pytest.approx(80.0 / ref_derived[0]["reward"])
    steps = ref.run_dir.records("steps.jsonl")
    assert len(steps) == 6 and {"loss", "baseline", "entropy", "valid_ppl"} <= set(steps[0])
    epochs = ref.run_dir.records("epochs.jsonl")
    assert epochs[-1]["loss"] < epochs[0]["loss"] and epochs[0]["tokens"] > 0
    assert any(not torch.equal(before[k], v) for k, v in ref.strategy.controller.state_dict().items())

    s = _lm_search(tmp_path, "run", data, epochs=3)
    restore = kill_on_call(monkeypatch, ENASSearch, "train_controller", 2)   # killed in epoch 2's controller phase
    with pytest.raises(KeyboardInterrupt):
        s.run()
    restore()
    resumed = _lm_search(tmp_path, "run", data, epochs=3)
    assert resumed.epoch == 1
    assert resumed.run() == ref_derived
    strip = lambda recs: [{k: v for k, v in r.items() if "seconds" not in k and "per_s" not in k} for r in recs]
    assert strip(resumed.run_dir.records("epochs.jsonl")) == strip(epochs)
    assert resumed.run_dir.records("steps.jsonl") == steps


def test_enas_rnn_settings_are_checked(tmp_path):
    data = {"name": "ptb", "path": str(_write_corpus(tmp_path / "ptb"))}
    with pytest.raises(ValueError, match="lr_max"):
        make_enas(SPACE, RandomSearch(SPACE, batch_size=2), data=data, lr_max=0.1)
    s = make_enas(SPACE, RandomSearch(SPACE, batch_size=2), data=data, **TINY)
    assert isinstance(s.shared, LMSharedWeights) and len(s.run()) == 3


# -- presets and the command line ------------------------------------------------------------------------
def test_final_preset_parameter_count(capsys):
    assert main(["train", "--preset", "enas-rnn-final", "--dry-run"]) == 0
    out = capsys.readouterr().out
    # tied 10,000 x 800 embedding + node 0's [1600, 1600] + 8 nodes x [800, 1600], no biases
    assert f"parameters: {10000 * 800 + 1600 * 1600 + 8 * 800 * 1600:,}" in out and PUBLISHED_ARC in out


def test_train_command_reports_perplexity_and_trains_the_lstm_baseline(tmp_path, capsys, one_thread):
    ptb = _write_corpus(tmp_path / "ptb")
    common = ["train", "--preset", "enas-rnn-tiny", "--arc", "0 0 1 1 1 2 3 3 2 0 5 1 6 2 7 3",
              "--data-dir", str(ptb), "--set", "final_net.hidden_size=12", "--set", "train.batch_size=8",
              "--set", "train.epochs=2", "--quiet"]
    assert main(common + ["--out", str(tmp_path / "cell")]) == 0
    res = json.loads((tmp_path / "cell" / "result.json").read_text())
    assert res["cell"] == "enas" and 1 < res["test_ppl"] < 17 and res["valid_ppl"] < 17
    assert "perplexity: valid" in capsys.readouterr().out
    hist = [json.loads(l) for l in (tmp_path / "cell" / "history.jsonl").read_text().splitlines()]
    assert [h["epoch"] for h in hist] == [1, 2]
    # each epoch's record and the result, key by key (mutation-testing survivors, issue 11)
    assert all(set(h) == {"epoch", "loss", "train_ppl", "valid_ppl", "lr", "averaging", "tokens_per_s", "seconds"}
               for h in hist)
    assert all(h["tokens_per_s"] == round(h["tokens_per_s"], 1) and h["seconds"] == round(h["seconds"], 3)
               and h["train_ppl"] == pytest.approx(math.exp(h["loss"])) and h["averaging"] is False for h in hist)
    assert res["data"] == "ptb" and res["hidden_size"] == 12 and res["epochs"] == 2
    assert res["train_seconds"] == round(sum(h["seconds"] for h in hist), 2)
    assert time.strptime(res["finished"], "%Y-%m-%d %H:%M:%S")
    state = torch.load(tmp_path / "cell" / "model.pt")
    eight = ENASRNNSpace()
    model = eight.language_model(eight.from_arc("0 0 1 1 1 2 3 3 2 0 5 1 6 2 7 3"), state["embedding"].shape[0],
                                 hidden_size=12)
    model.load_state_dict(state)                                  # the trained weights, whole
    assert res["params"] == sum(p.numel() for p in model.parameters())
    assert main(common + ["--out", str(tmp_path / "cell2")]) == 0          # the same seed: the same network
    assert torch.equal(torch.load(tmp_path / "cell2" / "model.pt")["embedding"], state["embedding"])
    assert main(common + ["--set", "seed=1", "--out", str(tmp_path / "cell3")]) == 0
    assert not torch.equal(torch.load(tmp_path / "cell3" / "model.pt")["embedding"], state["embedding"])
    assert main(common + ["--set", "final_net.cell=lstm", "--out", str(tmp_path / "lstm")]) == 0
    lstm = json.loads((tmp_path / "lstm" / "result.json").read_text())
    assert lstm["cell"] == "lstm" and lstm["params"] != res["params"] and lstm["test_ppl"] < 17
    capsys.readouterr()
    assert main(["show", str(tmp_path / "lstm")]) == 0                # a baseline: no cell diagram, named LSTM
    assert "plain LSTM" in capsys.readouterr().out and not (tmp_path / "lstm" / "figures" / "best_arch.png").exists()
    assert main(["show", str(tmp_path / "cell")]) == 0
    assert (tmp_path / "cell" / "figures" / "best_arch.png").exists()


def test_retraining_seeds_its_bptt_draws_and_feeds_nt_asgd_each_valid_ppl(tmp_path, monkeypatch, one_thread):
    """The retraining's LMTraining gets the architecture's seed (its BPTT lengths follow it) and
    NT-ASGD's trigger sees each epoch's validation perplexity, the one the record holds."""
    import torchnas.tasks.language as task
    from torchnas.training import arch_seed
    seen = {"valid": []}

    class Recorded(LMTraining):
        def __init__(self, *a, **kw):
            seen["seed"] = kw.get("seed")
            super().__init__(*a, **kw)

        def end_epoch(self, valid):
            seen["valid"].append(valid)
            return super().end_epoch(valid)

        def train_epoch(self, *a, **kw):           # timings with known digits, for the rounding
            return {**super().train_epoch(*a, **kw), "tokens_per_s": 1234.5678, "seconds": 0.123456}
    monkeypatch.setattr(task, "LMTraining", Recorded)
    arc = "0 0 1 1 1 2 3 3 2 0 5 1 6 2 7 3"
    ptb = _write_corpus(tmp_path / "ptb")
    events = []
    run = api.train(arch=arc, preset="enas-rnn-tiny", data_dir=ptb, seed=3, out=tmp_path / "run",
                    set=["final_net.hidden_size=12", "train.batch_size=8", "train.epochs=2"],
                    on_event=lambda kind, d: events.append((kind, d)))
    eight = ENASRNNSpace()
    assert seen["seed"] == arch_seed(3, eight.from_arc(arc))
    hist = [json.loads(l) for l in (tmp_path / "run" / "history.jsonl").read_text().splitlines()]
    assert seen["valid"] == [h["valid_ppl"] for h in hist]
    assert [(h["tokens_per_s"], h["seconds"]) for h in hist] == [(1234.6, 0.123)] * 2
    assert run.result["train_seconds"] == 0.25                   # round(2 x 0.123, 2)
    assert [d["completed"] for kind, d in events if kind == "progress"] == [1, 2]     # each epoch reported


def test_training_step_is_bitwise_repeatable_with_threads():
    """Frequent words repeat inside a window; the embedding's backward must not sum their
    gradients in a thread-dependent order (``E[tokens]`` does on CPU, ``F.embedding`` does not)."""
    n = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        torch.manual_seed(0)
        lm = SPACE.language_model(ARC, 5, 64)
        tokens = torch.randint(0, 5, (36, 64))            # 5 words: every one repeats hundreds of times
        grads = []
        for _ in range(4):
            lm.zero_grad()
            out = lm(tokens[:-1])
            torch.nn.functional.cross_entropy(out.logits.flatten(0, 1), tokens[1:].reshape(-1)).backward()
            grads.append(lm.embedding.grad.clone())
        assert all(torch.equal(grads[0], g) for g in grads[1:])
    finally:
        torch.set_num_threads(n)


def test_one_training_epoch_by_hand(tmp_path, one_thread):
    """Mutation survivors (issue 11): LMTraining.train_epoch against a loop written here from
    the reference's rules: the state carried (detached) across windows, SGD at lr · L / bptt,
    l2 as 2 · wd · w added to the gradient before clipping, mean cross-entropy over tokens,
    and max_batches windows at most."""
    import copy
    import torch.nn.functional as F
    from torchnas.data.ptb import batchify
    from torchnas.nn.lm import detach_state
    corpus = load_ptb(path=_write_corpus(tmp_path / "ptb"))
    V, wd, lr, clip, bptt = len(corpus), 1e-3, 1.0, 0.25, 5
    torch.manual_seed(0)
    model = SPACE.language_model(ARC, V, 8)
    ref_model = copy.deepcopy(model)
    training = LMTraining(model, corpus, epochs=1, batch_size=4, bptt=bptt, variable_bptt=False, lr=lr,
                          grad_clip=clip, weight_decay=wd, seed=0, device="cpu")
    out = training.train_epoch()
    data, params = batchify(corpus.train, 4), [p for p in ref_model.parameters() if p.requires_grad]
    state, ce_sum, tokens, windows = ref_model.init_state(4), 0.0, 0, 0
    ref_model.train()
    for i in range(0, len(data) - 1, bptt):
        length = min(bptt, len(data) - 1 - i)
        x, y = data[i:i + length], data[i + 1:i + 1 + length]
        o = ref_model(x, state, None)
        state = detach_state(o.state)
        ce = F.cross_entropy(o.logits.flatten(0, 1), y.reshape(-1))
        for p in params:
            p.grad = None
        ce.backward()
        for p in params:
            p.grad += 2 * wd * p.detach()
        torch.nn.utils.clip_grad_norm_(params, clip)
        with torch.no_grad():
            for p in params:
                p -= lr * len(x) / bptt * p.grad
        ce_sum, tokens, windows = ce_sum + ce.item() * y.numel(), tokens + y.numel(), windows + 1
    assert out["tokens"] == tokens and training.step == windows and training.epoch == 1
    assert out["loss"] == pytest.approx(ce_sum / tokens, rel=1e-5)
    assert out["train_ppl"] == pytest.approx(math.exp(ce_sum / tokens), rel=1e-5)
    assert 0 < out["seconds"] and out["tokens_per_s"] == pytest.approx(tokens / out["seconds"], rel=1e-6)
    for a, b in zip(model.parameters(), ref_model.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    capped = LMTraining(copy.deepcopy(ref_model), corpus, epochs=1, batch_size=4, bptt=bptt, variable_bptt=False,
                        lr=lr, seed=0, device="cpu", max_batches=2)
    assert capped.train_epoch()["tokens"] == 2 * bptt * 4 and capped.step == 2


def test_lm_training_defaults_are_the_references():
    """enas_lm (child.py, fixed_lib.py): lr 20, batch 64, BPTT 35 of random length, clipping
    0.25, no decay or regularisers unless set, NT-ASGD off, nonmono 10 (best_valid_ppl_threshold),
    evaluation at batch 64 and the test set token by token (batch 1)."""
    import inspect
    params = inspect.signature(LMTraining).parameters
    assert {k: p.default for k, p in params.items() if k not in ("model", "corpus")} == {
        "epochs": 1, "batch_size": 64, "bptt": 35, "variable_bptt": True, "bptt_sampler": "awd-lstm", "lr": 20.0,
        "grad_clip": 0.25, "weight_decay": 0.0, "alpha": 0.0, "beta": 0.0, "average": None, "nonmono": 10,
        "eval_batch_size": 64, "test_batch_size": 1, "max_batches": None, "seed": 0, "precision": "auto",
        "device": "auto"}
    corpus = Corpus(["a", "b"], {"a": 0, "b": 1}, _stream(400, 2), _stream(50, 2), _stream(50, 2))
    t = LMTraining(SPACE.language_model(ARC, 2, 4), corpus, device="cpu")
    assert t.opt.param_groups[0]["lr"] == 20.0 and t.avg is None and t.avg_steps == 0 and t.valid_history == []
    # what a training built with the defaults holds (a call, not only the signature)
    assert (t.epochs, t.batch_size, t.bptt, t.variable_bptt, t.bptt_sampler, t.lr, t.grad_clip) == (
        1, 64, 35, True, "awd-lstm", 20.0, 0.25)
    assert (t.weight_decay, t.alpha, t.beta, t.average, t.nonmono, t.eval_batch_size, t.test_batch_size,
            t.max_batches) == (0.0, 0.0, 0.0, None, 10, 64, 1, None)
    assert torch.equal(t.generator.get_state(), torch.Generator().manual_seed(0).get_state())


NEEDS = "language-model training needs epochs >= 1, batch_size >= 1, bptt >= 1 and lr > 0 "
NONNEG = "weight_decay, alpha and beta must be >= 0 and nonmono >= 1"


@pytest.mark.parametrize("kwargs, message", [
    ({"epochs": 0}, NEEDS + "(got 0, 64, 35, 20.0)"),
    ({"batch_size": 0}, NEEDS + "(got 1, 0, 35, 20.0)"),
    ({"bptt": 0}, NEEDS + "(got 1, 64, 0, 20.0)"),
    ({"lr": 0.0}, NEEDS + "(got 1, 64, 35, 0.0)"),
    ({"weight_decay": -1e-9}, NONNEG),
    ({"alpha": -1e-9}, NONNEG),
    ({"beta": -1e-9}, NONNEG),
    ({"nonmono": 0}, NONNEG),
    ({"average": "swa"}, "average must be 'nt-asgd' or null, not 'swa'"),
    ({"bptt_sampler": "gauss"}, "bptt_sampler must be one of awd-lstm, enas-lm, not 'gauss'"),
])
def test_lm_training_refuses_bad_settings_at_their_edges(kwargs, message):
    corpus = Corpus(["a", "b"], {"a": 0, "b": 1}, _stream(400, 2), _stream(50, 2), _stream(50, 2))
    with pytest.raises(ValueError) as e:
        LMTraining(SPACE.language_model(ARC, 2, 4), corpus, device="cpu", **kwargs)
    assert str(e.value) == message
    edge = {k: {"epochs": 1, "batch_size": 1, "bptt": 1, "lr": 1e-12, "weight_decay": 0.0, "alpha": 0.0,
                "beta": 0.0, "nonmono": 1, "average": "nt-asgd", "bptt_sampler": "enas-lm"}[k] for k in kwargs}
    LMTraining(SPACE.language_model(ARC, 2, 4), corpus, device="cpu", **edge)


def test_lm_evaluate_uses_each_splits_batch_and_the_given_cell():
    """The test split is scored at test_batch_size, the others at eval_batch_size, each with
    the architecture given (a shared model needs it), by the exact perplexity."""
    corpus = Corpus(["a", "b"], {"a": 0, "b": 1}, _stream(400, 2), _stream(60, 2, seed=1), _stream(60, 2, seed=2))
    shared = SPACE.language_model(None, 2, 4)
    t = LMTraining(shared, corpus, bptt=7, eval_batch_size=3, test_batch_size=2, device="cpu")
    for split, b in (("valid", 3), ("test", 2), ("train", 3)):
        assert t.evaluate(split, ARC)["ppl"] == perplexity(shared, getattr(corpus, split), b, 7, ARC)["ppl"]
    other = SPACE.from_arc("0 1 1 0 2 2 0 3")
    assert t.evaluate("valid", other)["ppl"] != t.evaluate("valid", ARC)["ppl"]
    assert t.evaluate("valid", ARC, batch_size=1)["ppl"] == perplexity(shared, corpus.valid, 1, 7, ARC)["ppl"]


def test_lm_state_round_trip_keeps_the_average_and_history():
    """A checkpoint taken while NT-ASGD averages restores the average, its step count and the
    validation history, so a resumed run averages on exactly."""
    corpus = Corpus(["a", "b"], {"a": 0, "b": 1}, _stream(400, 2), _stream(50, 2), _stream(50, 2))

    def make():
        torch.manual_seed(0)
        return LMTraining(SPACE.language_model(ARC, 2, 4), corpus, batch_size=4, bptt=5, average="nt-asgd",
                          nonmono=1, device="cpu")
    a = make()
    for ppl in (5.0, 6.0, 7.0):                  # worse than the best before the last: averaging starts
        a.end_epoch(ppl)
    a.train_epoch()
    assert a.avg is not None and a.avg_steps > 0
    b = make()
    b.load_state_dict(a.state_dict())
    assert b.valid_history == [5.0, 6.0, 7.0] and b.avg_steps == a.avg_steps
    assert all(torch.equal(x, y) for x, y in zip(a.avg, b.avg))
    a.train_epoch(), b.train_epoch()
    assert b.avg_steps == a.avg_steps and all(torch.equal(x, y) for x, y in zip(a.avg, b.avg))
    assert a.evaluate("valid") == b.evaluate("valid")


def test_lm_epoch_progress_counts_windows_and_tokens():
    """The step bar of a language-model epoch: one report per window, of
    ceil((stream length - 1) / bptt) windows expected, counting tokens; evaluate() scores the
    validation split by default."""
    from torchnas.training import progress
    corpus = Corpus(["a", "b"], {"a": 0, "b": 1}, _stream(400, 2), _stream(50, 2), _stream(50, 2))
    t = LMTraining(SPACE.language_model(ARC, 2, 4), corpus, batch_size=4, bptt=7, variable_bptt=False, device="cpu")
    seen = []
    with progress.listening(seen.append):
        out = t.train_epoch()
    stream = len(t.train_data)                                    # 100 steps of 4 streams
    assert [s["done"] for s in seen] == list(range(1, len(seen) + 1)) == list(range(1, -(-(stream - 1) // 7) + 1))
    assert {s["total"] for s in seen} == {-(-(stream - 1) // 7)} and {s["unit"] for s in seen} == {"tok"}
    assert seen[-1]["items"] == out["tokens"] == 4 * (stream - 1)
    assert t.evaluate() == t.evaluate("valid") != t.evaluate("test")


def test_lm_epoch_windows_follow_the_sampler_and_divergence_names_its_step():
    """variable_bptt and bptt_sampler reach the windows (their lengths, read from the progress
    reports); a non-finite loss stops the epoch with its epoch and step."""
    from torchnas.training import progress
    corpus = Corpus(["a", "b"], {"a": 0, "b": 1}, _stream(4000, 2), _stream(50, 2), _stream(50, 2))

    def lengths(**kw):
        t = LMTraining(SPACE.language_model(ARC, 2, 4), corpus, batch_size=2, bptt=20, device="cpu", **kw)
        seen = []
        with progress.listening(seen.append):
            t.train_epoch()
        items = [0] + [s["items"] for s in seen]
        return [(b - a) // 2 for a, b in zip(items, items[1:])][:-1]
    assert set(lengths(variable_bptt=False)) == {20}
    awd, enas = lengths(), lengths(bptt_sampler="enas-lm")
    assert len(set(awd)) > 3 and min(awd) >= 5
    assert len(set(enas)) > 3 and max(enas) <= 30 and enas != awd        # within base ± 10, its own draws
    t = LMTraining(SPACE.language_model(ARC, 2, 4), corpus, batch_size=2, bptt=20, device="cpu")
    t.train_epoch()
    t.step = 41
    with torch.no_grad():
        next(t.model.parameters()).fill_(float("nan"))
    assert t.train_epoch() == {"diverged": "non-finite loss (nan) at epoch 2, step 42"}


def test_lm_epoch_times_and_max_batches_in_its_progress():
    import time
    from torchnas.training import progress
    corpus = Corpus(["a", "b"], {"a": 0, "b": 1}, _stream(400, 2), _stream(50, 2), _stream(50, 2))
    t = LMTraining(SPACE.language_model(ARC, 2, 4), corpus, batch_size=4, bptt=7, variable_bptt=False,
                   max_batches=3, device="cpu")
    seen = []
    t0 = time.perf_counter()
    with progress.listening(seen.append):
        out = t.train_epoch()
    wall = time.perf_counter() - t0
    assert [s["total"] for s in seen] == [3, 3, 3] and out["tokens"] == 3 * 7 * 4
    assert 0 < seen[0]["seconds"] <= seen[-1]["seconds"] <= out["seconds"] <= wall
    assert out["tokens_per_s"] == pytest.approx(out["tokens"] / out["seconds"])


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("chunk", [1, 4, 7, 64])
def test_tied_cross_entropy_equals_the_plain_one(reduction, chunk):
    """The chunked, gradient-in-forward softmax (issue 15) against F.cross_entropy on the whole
    logits: the loss and both gradients, for chunks that do and do not divide the rows."""
    from torchnas.nn.lm import tied_cross_entropy
    g = torch.Generator().manual_seed(0)
    top = torch.randn(13, 6, generator=g, requires_grad=True)
    E = torch.randn(11, 6, generator=g, requires_grad=True)
    y = torch.randint(0, 11, (13,), generator=g)
    ref = F.cross_entropy(top @ E.t(), y, reduction=reduction)
    got = tied_cross_entropy(top, E, y, reduction, chunk=chunk)
    torch.testing.assert_close(got, ref)
    for a, b in zip(torch.autograd.grad(2.5 * got, [top, E]), torch.autograd.grad(2.5 * ref, [top, E])):
        torch.testing.assert_close(a, b)
    frozen = E.detach()                                       # only top needs a gradient
    d_top, = torch.autograd.grad(tied_cross_entropy(top, frozen, y, reduction, chunk=chunk), [top])
    torch.testing.assert_close(d_top, torch.autograd.grad(F.cross_entropy(top @ frozen.t(), y, reduction=reduction),
                                                          [top])[0])
    with torch.no_grad():
        out = tied_cross_entropy(top, E, y, reduction, chunk=chunk)
    assert not out.requires_grad and torch.allclose(out, ref.detach())


def test_lm_shared_weights_by_hand(tmp_path):
    """``LMSharedWeights`` (enas_lm ``search.py``): the defaults it builds, its refusals, the
    validation windows it cycles through in order, the epoch record it returns, and a divergence
    (written from mutation-testing survivors, issue 11)."""
    from torchnas.data.ptb import batchify
    from torchnas.runs import RunError
    data = {"name": "ptb", "path": str(_write_corpus(tmp_path / "ptb", n_lines=400))}
    net = {"hidden_size": 8}
    from torchnas.training.device import default_device
    w = LMSharedWeights(SPACE, data, net=net, reward_batch=4)
    t = w.training
    assert (t.batch_size, t.bptt, t.variable_bptt, t.bptt_sampler, t.lr, t.grad_clip, t.weight_decay, t.alpha,
            t.beta) == (128, 35, True, "awd-lstm", 20.0, 0.1, 0.0, 0.0, 1.0)
    assert w.reward_constant == 80.0 and t.device == default_device("auto") and w.metric_of(80.0 / 7) == pytest.approx(7)
    for key, value, message in (("net", {"hiden": 8}, "enas.net.hiden is not a setting of enas.net; it takes: cell, "
                                 "dropout, hidden_size, init_range, output"),
                                ("data", {**data, "bogus": 1}, "enas.data.bogus is not a setting of enas.data; it "
                                 "takes: data_dir, name, path, train_tokens")):
        with pytest.raises(ValueError) as e:
            LMSharedWeights(SPACE, **{"data": data, "net": net, "reward_batch": 4, key: value})
        assert str(e.value) == message
    assert LMSharedWeights(SPACE, data, net=net, reward_batch=4, reward_constant=0.5, device="cpu").reward_constant == 0.5
    for bad in (0, -1.0):
        with pytest.raises(ValueError) as e:
            LMSharedWeights(SPACE, data, net=net, reward_batch=4, reward_constant=bad, device="cpu")
        assert str(e.value) == f"ENAS needs reward_constant > 0, got {bad}"
    # the validation windows: reward_batch streams of bptt tokens, in order, then again; here the
    # 5 streams are 112 tokens long, so the last of the 3 windows of 37 ends on the last target
    w = LMSharedWeights(SPACE, data, net=net, reward_batch=5, bptt=37, device="cpu")
    valid = batchify(w.corpus.valid, 5)
    assert len(valid) == 112 and w.valid_windows == 3
    for k in [0, 1, 2, 0, 1]:
        x, y = w.valid_batch()
        assert torch.equal(x, valid[37 * k:37 * k + 37]) and torch.equal(y, valid[37 * k + 1:37 * k + 38])
    # one epoch: a cell per window, in the order drawn, SAMPLE_CHUNK drawn at once; the record's
    # keys and rounding
    from torchnas.tasks.language import SAMPLE_CHUNK
    w = LMSharedWeights(SPACE, data, net=net, batch_size=4, bptt=6, variable_bptt=False, reward_batch=4,
                        max_train_batches=3, device="cpu")
    asked, drawn, used = [], [], []

    def sample(k):
        asked.append(k)
        cells = [SPACE.random(random.Random(len(drawn) + i)) for i in range(k)]
        drawn.extend(cells)
        return cells
    forward = w.net.forward
    w.net.forward = lambda x, state, arch=None: used.append(arch) or forward(x, state, arch)
    rec = w.train_epoch(sample)
    del w.net.forward
    assert asked == [SAMPLE_CHUNK] and used == drawn[:3] and len(set(map(str, drawn[:3]))) == 3
    loop = w.training.train_epoch
    w.training.train_epoch = lambda arch_fn: {"lr": 2.5, "loss": 1.5, "train_ppl": 4.48, "tokens": 12,
                                              "tokens_per_s": 1234.5678, "seconds": 0.123456}
    assert w.train_epoch(sample) == {"lr": 2.5, "loss": 1.5, "train_ppl": 4.48, "tokens": 12, "tokens_per_s": 1234.6,
                                     "shared_seconds": 0.123456}
    w.training.train_epoch = loop
    assert set(rec) == {"lr", "loss", "train_ppl", "tokens", "tokens_per_s", "shared_seconds"}
    assert rec["tokens"] == 3 * 6 * 4 and rec["tokens_per_s"] == round(rec["tokens_per_s"], 1)
    assert rec["train_ppl"] == pytest.approx(math.exp(rec["loss"])) and rec["lr"] == 20.0
    w.training.train_epoch = lambda arch_fn: {"diverged": "loss nan at step 2"}
    with pytest.raises(RunError) as e:
        w.train_epoch(sample)
    assert str(e.value) == "shared-weight training diverged: loss nan at step 2; lower enas.lr or enas.grad_clip"


def test_lm_shared_weights_pass_every_setting_on(tmp_path):
    """Each ``enas:`` setting of the recurrent search reaches the training loop and the model;
    the default seed is 0 (mutation survivors, issue 11)."""
    data = {"name": "ptb", "path": str(_write_corpus(tmp_path / "ptb", n_lines=400))}
    net = {"hidden_size": 8}
    w = LMSharedWeights(SPACE, data, net=net, reward_batch=4, device="cpu")
    assert w.training.epochs == 10 and w.net.hidden_size == 8
    torch.manual_seed(123)
    w0 = LMSharedWeights(SPACE, data, net=net, reward_batch=4, seed=0, device="cpu")
    assert all(torch.equal(a, b) for a, b in zip(w.net.state_dict().values(), w0.net.state_dict().values()))
    w = LMSharedWeights(SPACE, data, net={"hidden_size": 6}, reward_batch=4, epochs=3, batch_size=5, bptt=9,
                        variable_bptt=False, bptt_sampler="enas-lm", lr=5.0, grad_clip=0.5, weight_decay=1e-3,
                        alpha=0.5, beta=0.25, max_train_batches=2, seed=7, device="cpu")
    t = w.training
    assert (t.epochs, t.batch_size, t.bptt, t.variable_bptt, t.bptt_sampler, t.lr, t.grad_clip, t.weight_decay,
            t.alpha, t.beta, t.max_batches) == (3, 5, 9, False, "enas-lm", 5.0, 0.5, 1e-3, 0.5, 0.25, 2)
    assert w.net.hidden_size == 6 and w.bptt == 9
    assert torch.equal(torch.rand(3, generator=t.generator), torch.rand(3, generator=torch.Generator().manual_seed(7)))
    assert torch.equal(w.generator.get_state(), torch.Generator().manual_seed(7).get_state())


def test_lm_shared_weights_validation_windows_at_the_edges(tmp_path):
    """The validation split must hold 2 x reward_batch tokens (one stream of 2: an input and its
    target); a window longer than a stream is cut to it; a split with room for one window
    repeats that window (mutation survivors, issue 11)."""
    from torchnas.data.ptb import batchify
    data = {"name": "ptb", "path": str(_write_corpus(tmp_path / "ptb", n_lines=400))}
    net = {"hidden_size": 8}
    n_valid = len(LMSharedWeights(SPACE, data, net=net, reward_batch=4, device="cpu").corpus.valid)
    assert LMSharedWeights(SPACE, data, net=net, reward_batch=n_valid // 2, device="cpu").reward_batch == n_valid // 2
    too_many = n_valid // 2 + 1
    with pytest.raises(ValueError) as e:
        LMSharedWeights(SPACE, data, net=net, reward_batch=too_many, device="cpu")
    assert str(e.value) == (f"the validation split ({n_valid} tokens) is too short for reward_batch {too_many} "
                            f"streams: lower enas.reward_batch")
    # 5 streams of 112 tokens: a window of 56 fits once (111 targets), so it repeats
    w = LMSharedWeights(SPACE, data, net=net, reward_batch=5, bptt=56, device="cpu")
    valid = batchify(w.corpus.valid, 5)
    assert len(valid) == 112 and w.valid_windows == 1
    for _ in range(2):
        x, y = w.valid_batch()
        assert torch.equal(x, valid[:56]) and torch.equal(y, valid[1:57])
    w = LMSharedWeights(SPACE, data, net=net, reward_batch=5, bptt=200, device="cpu")     # longer than a stream
    x, y = w.valid_batch()
    assert w.valid_windows == 1 and torch.equal(x, valid[:111]) and torch.equal(y, valid[1:112])


def test_language_export_network_example_and_vocabulary(tmp_path):
    """The export's example input: two sequences of the run's bptt tokens (35 when it has none),
    drawn from a fixed seed so that two exports of a run check the same input; the vocabulary
    goes to a new folder and may be written again (mutation survivors, issue 11)."""
    from torchnas.tasks.language import LanguageModeling, _write_vocab
    ptb = _write_corpus(tmp_path / "ptb")
    lm = SPACE.language_model(ARC, 17, 8)
    task, data = LanguageModeling(), {"name": "ptb", "path": str(ptb)}
    for cfg, length in (({"data": data}, 35), ({"data": data, "train": {"bptt": 6}}, 6)):
        model, (example,), meta = task.export_network(SPACE, ARC, cfg, {"hidden_size": 8}, lm.state_dict(),
                                                      tmp_path / "out" / "deep")
        model.load_state_dict(lm.state_dict())          # the child of ARC, at the run's size
        model.eval(), lm.eval()
        assert model.vocab_size == 17 and torch.equal(model(example).logits, lm(example).logits)
        assert torch.equal(example, torch.randint(0, 17, (length, 2), generator=torch.Generator().manual_seed(0)))
        assert meta["vocab"] == "vocab.txt: token id = line number (from 0)"
    assert (tmp_path / "out" / "deep" / "vocab.txt").read_text() == "".join(
        w + "\n" for w in ["<eos>"] + sorted(f"w{k}" for k in range(16)))
    assert _write_vocab(data, tmp_path / "x", 99) == "vocab.txt not written: the corpus has 17 words, the model 99"
    assert not (tmp_path / "x").exists()


def test_language_describe_counts_the_model_for_ptb():
    """``torchnas train --dry-run`` for a recurrent cell (LanguageModeling.describe): the model
    built for Penn Treebank's 10,000 words without loading the corpus."""
    from torchnas.tasks.language import LanguageModeling
    d = LanguageModeling().describe(SPACE, ARC, {}, {"hidden_size": 8})
    lm = SPACE.language_model(ARC, 10000, hidden_size=8)
    assert d == {"arch": str(ARC), "arc": SPACE.to_arc(ARC), "params": sum(p.numel() for p in lm.parameters()),
                 "cell_params": sum(p.numel() for p in lm.cell.parameters()), "embedding_params": 10000 * 8,
                 "vocab": 10000, "net": {"hidden_size": 8}}
