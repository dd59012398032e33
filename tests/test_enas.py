import json

import pytest
import torch

from tests.conftest import kill_on_call
from torchnas.enas import ENASSearch
from torchnas.tasks.images import frozen_bn_stats
from torchnas.training import cosine_restart_lr
from torchnas.runs import RunDir
from torchnas.spaces import get_space
from torchnas.strategies import RandomSearch, Reinforce

pytestmark = pytest.mark.usefixtures("one_thread")

ENAS_REINFORCE = dict(batch_size=3, lr=0.0035, adam_betas=(0.0, 0.999), adam_eps=1e-3, baseline_decay=0.99,
                      baseline_update="sample", entropy_weight=1e-4,
                      controller={"tanh_constant": 1.1, "op_tanh_reduce": 2.5, "choice_bias": {"op": [10, 10, 0, 0, 0]}})
TINY = dict(data={"name": "digits", "per_class": 20}, net={"channels": 4, "num_layers": 3}, epochs=2,
            batch_size=32, train_steps=2, derive_samples=6, keep=3, grad_clip=None)




def test_cosine_with_warm_restarts():
    lr = lambda e: cosine_restart_lr(e, 0.05, 0.0005, 10, 2)
    assert lr(0) == pytest.approx(0.05) and lr(10) == pytest.approx(0.05) and lr(30) == pytest.approx(0.05)
    assert lr(5) == pytest.approx(0.0005 + 0.5 * 0.0495)
    assert lr(9) < lr(8) < lr(5) and lr(29) < lr(20)
    assert lr(70) == pytest.approx(0.05) and lr(150) == pytest.approx(0.05)   # periods 10, 20, 40, 80


def test_reward_uses_batch_stats_without_touching_running_stats():
    bn = torch.nn.BatchNorm2d(3)
    bn.train()
    with frozen_bn_stats(bn):
        bn(torch.randn(8, 3, 4, 4) * 5 + 2)
    assert torch.equal(bn.running_mean, torch.zeros(3)) and torch.equal(bn.running_var, torch.ones(3))
    assert bn.momentum == 0.1


def _search(tmp_path=None, name="run", **kw):
    space = get_space("enas-micro")
    run = None
    if tmp_path:
        run = RunDir(tmp_path / name)
        if not (run.path / RunDir.CONFIG).exists():
            run.create({"test": True})
    return ENASSearch(space, Reinforce(space, seed=1, **ENAS_REINFORCE), seed=1, run_dir=run,
                      **{**TINY, **kw}).resume()


def test_enas_loop_trains_shared_weights_and_controller(tmp_path):
    s = _search(tmp_path)
    before = {k: v.clone() for k, v in s.strategy.controller.state_dict().items()}
    derived = s.run()
    assert len(derived) == 3 and derived[0]["reward"] >= derived[-1]["reward"]
    for d in derived:
        s.space.parse(d["arch"])
    run = s.run_dir
    epochs = run.records("epochs.jsonl")
    assert [e["epoch"] for e in epochs] == [1, 2] and all(e["loss"] > 0 for e in epochs)
    steps = run.records("steps.jsonl")
    assert len(steps) == 4 and {"loss", "baseline", "entropy", "valid_acc"} <= set(steps[0])
    assert json.loads((run.path / "best.json").read_text())["arch"] == derived[0]["arch"]
    after = s.strategy.controller.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)      # the controller learned


def test_enas_resumes_exactly(tmp_path, monkeypatch):
    ref = _search(tmp_path, "ref", epochs=3)
    ref_derived = ref.run()
    s = _search(tmp_path, "run", epochs=3)
    restore = kill_on_call(monkeypatch, ENASSearch, "train_controller", 2)   # killed in epoch 2's controller phase
    with pytest.raises(KeyboardInterrupt):
        s.run()
    restore()
    resumed = _search(tmp_path, "run", epochs=3)
    assert resumed.epoch == 1
    assert resumed.run() == ref_derived
    strip = lambda recs: [{k: v for k, v in r.items() if "seconds" not in k} for r in recs]
    assert strip(resumed.run_dir.records("epochs.jsonl")) == strip(ref.run_dir.records("epochs.jsonl"))
    assert resumed.run_dir.records("steps.jsonl") == ref.run_dir.records("steps.jsonl")


def test_random_sampler_with_shared_weights():
    space = get_space("enas-micro")
    s = ENASSearch(space, RandomSearch(space, seed=0, batch_size=3), seed=0, **TINY)
    derived = s.run()
    assert len(derived) == 3 and s.updates == 4


def test_bad_settings():
    space = get_space("enas-micro")
    with pytest.raises(ValueError, match="reward_bn"):
        ENASSearch(space, RandomSearch(space), reward_bn="median", **TINY)


@pytest.mark.parametrize("name, net", [
    ("enas-micro", {"channels": 4, "num_layers": 3, "keep_prob": 0.8}),   # 8x8 digits: too small for the aux head
    ("enas-macro", {"channels": 4, "keep_prob": 0.5}),
])
def test_final_training_of_a_derived_network_resumes_exactly(tmp_path, monkeypatch, name, net):
    """The ENAS final regime (aux head, drop-path, dropout, cutout, cosine restarts) end to end,
    killed after an epoch and resumed: the same history and test accuracy."""
    from torchnas.training import Training
    from torchnas.train import retrain, train_config
    space = get_space(name, **({"num_layers": 4} if name == "enas-macro" else {}))
    arch = str(space.random(__import__("random").Random(0)))
    settings = {"epochs": 3, "batch_size": 32, "lr": 0.05, "schedule": "cosine_restarts", "lr_t0": 1,
                "aux_weight": 0.4, "drop_path": 0.6, "cutout": 4}
    cfg = train_config(arch, space.config(), {"name": "digits", "per_class": 20}, settings, seed=3, net=net)
    ref = retrain(RunDir(tmp_path / "ref").create(cfg))
    run = RunDir(tmp_path / "run").create(cfg)
    real, calls = Training.train_epoch, {"n": 0}

    def crash(self):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(self)
    monkeypatch.setattr(Training, "train_epoch", crash)
    with pytest.raises(KeyboardInterrupt):
        retrain(run)
    monkeypatch.setattr(Training, "train_epoch", real)
    res = retrain(run)
    assert res["test_acc"] == ref["test_acc"] and res["flops"] > 0 and res["params"] > 0
    strip = lambda h: [(r["epoch"], r["loss"], r["valid_acc"]) for r in h]
    assert strip(run.records("history.jsonl")) == strip(RunDir(tmp_path / "ref").records("history.jsonl"))


def test_reward_skips_the_auxiliary_head():
    """Scoring a reward needs only the logits: the micro net's auxiliary head does not run
    (it still runs, and its loss counts, in shared-weight training)."""
    space = get_space("enas-micro")
    s = ENASSearch(space, RandomSearch(space, seed=0, batch_size=2), seed=0, **TINY)
    s.shared.training.model = space.shared(3, 10, channels=4, num_layers=3, aux_head=True, image_size=24)   # 24 px: room for the head
    calls = []
    s.net.aux_head.register_forward_hook(lambda *a: calls.append(1))
    arch = space.random(__import__("random").Random(0))
    batch = (torch.randn(4, 3, 24, 24), torch.randint(0, 10, (4,)))
    r = s.reward(arch, batch)
    assert 0 <= r <= 1 and calls == [] and s.net.compute_aux is True
    s.net.train()
    out = s.net(batch[0], arch)
    assert isinstance(out, tuple) and calls == [1]


def test_enas_logs_warm_up_sampling_and_derive_exactly(tmp_path):
    """Mutation survivors (issue 11): the epoch record's keys and values, the warm-up epoch
    without controller updates, the uniform warm-up draws seeded by the epoch, the steps'
    numbering, derived.json and best.json as written."""
    import random
    import time
    got = []
    s = _search(tmp_path, warmup_epochs=1)
    # the warm-up's architectures: uniform, from Random(seed * 1_000_003 + epoch)
    ref = random.Random(1 * 1_000_003 + 0)
    assert s.sampler()(5) == [s.space.random(ref) for _ in range(5)]
    s.epoch = 1                                       # after the warm-up: the policy's samples
    marker = [s.space.random(random.Random(7))]
    s.strategy.propose = lambda n: marker * n
    assert s.sampler()(2) == marker * 2
    del s.strategy.propose
    s.epoch = 0
    t0 = time.perf_counter()
    derived = s.run(on_epoch=got.append)
    wall = time.perf_counter() - t0
    epochs, steps = s.run_dir.records("epochs.jsonl"), s.run_dir.records("steps.jsonl")
    assert got == epochs
    assert set(epochs[0]) == {"epoch", "lr", "loss", "train_acc", "images", "shared_seconds", "controller_updates",
                              "valid_acc", "seconds"}
    assert epochs[0]["controller_updates"] == 0 and epochs[0]["valid_acc"] is None          # the warm-up
    assert epochs[1]["controller_updates"] == 2 == len(steps)
    assert epochs[1]["valid_acc"] == pytest.approx(sum(x["valid_acc"] for x in steps) / 2)
    assert [x["update"] for x in steps] == [1, 2] and {x["epoch"] for x in steps} == {1}
    assert all(0 < e["seconds"] < wall and e["seconds"] == round(e["seconds"], 3) for e in epochs)
    assert json.loads((s.run_dir.path / "derived.json").read_text()) == derived
    assert json.loads((s.run_dir.path / "best.json").read_text()) == {**derived[0], "derived_from": 6}


def test_score_candidates_replays_derive_with_more_batches(tmp_path):
    """``score_candidates`` (nb201_rederive.py's re-derive): from the state derive starts in,
    the same draws and, on derive's own minibatches, the same rewards and ranking; extra
    minibatches come after derive's and change none of its scores."""
    s = _search(tmp_path, derive_batches=2, derive_samples=8, keep=8)
    s.run()
    state = s.run_dir.load_checkpoint("enas")
    s.load_state_dict(state)
    derived = s.derive()
    s.load_state_dict(state)
    drawn, archs, rewards = s.score_candidates(5)
    assert len(drawn) == 8 and archs == list(dict.fromkeys(drawn)) and len(set(map(str, archs))) == len(archs)
    assert all(len(r) == 5 for r in rewards)
    mean2 = {str(a): sum(r[:2]) / 2 for a, r in zip(archs, rewards)}
    assert [d["arch"] for d in derived] == sorted(mean2, key=lambda a: -mean2[a])
    assert [d["reward"] for d in derived] == [mean2[d["arch"]] for d in derived]
    s.load_state_dict(state)
    assert s.score_candidates() == (drawn, archs, [r[:2] for r in rewards])


def test_enas_loop_defaults_and_edges():
    """The loop's defaults (10 epochs, the task's train steps: 30 for images as
    controller_train_steps, 25 for the language model; the best of 100 derived samples, 5
    kept, no warm-up, one derive batch, the controller's samples for ω) and each refusal at
    its edge, with its message."""
    import inspect
    from torchnas.tasks.base import SharedWeights
    from torchnas.tasks.language import LMSharedWeights
    params = inspect.signature(ENASSearch).parameters
    assert {k: params[k].default for k in ("epochs", "train_steps", "derive_samples", "keep", "warmup_epochs",
                                           "derive_batches", "shared_sampling", "seed", "run_dir")} == {
        "epochs": 10, "train_steps": None, "derive_samples": 100, "keep": 5, "warmup_epochs": 0, "derive_batches": 1,
        "shared_sampling": "policy", "seed": 0, "run_dir": None}
    assert SharedWeights.default_train_steps == 30 and LMSharedWeights.default_train_steps == 25
    space = get_space("enas-micro")
    built = ENASSearch(space, Reinforce(space, seed=1, **ENAS_REINFORCE), data=TINY["data"], net=TINY["net"])
    assert (built.epochs, built.train_steps, built.derive_samples, built.keep, built.warmup_epochs,
            built.derive_batches, built.shared_sampling, built.seed, built.run_dir) == (
        10, 30, 100, 5, 0, 1, "policy", 0, None)
    assert _search(train_steps=None).train_steps == 30 and _search(train_steps=0).train_steps == 0
    s = _search(epochs=3)
    assert s.shared.training.epochs == 3 and s.seed == 1           # ω's schedule spans the loop's epochs
    for kw, message in [({"epochs": 0}, "ENAS needs epochs >= 1, train_steps >= 0, derive_samples >= 1"),
                        ({"train_steps": -1}, "ENAS needs epochs >= 1, train_steps >= 0, derive_samples >= 1"),
                        ({"derive_samples": 0}, "ENAS needs epochs >= 1, train_steps >= 0, derive_samples >= 1"),
                        ({"warmup_epochs": 3}, "ENAS needs 0 <= warmup_epochs <= epochs (3, 2) and derive_batches >= 1 (1)"),
                        ({"derive_batches": 0}, "ENAS needs 0 <= warmup_epochs <= epochs (0, 2) and derive_batches >= 1 (0)")]:
        with pytest.raises(ValueError) as e:
            _search(**kw)
        assert str(e.value) == message
    _search(epochs=1, train_steps=0, derive_samples=1, warmup_epochs=1, derive_batches=1)      # the edges themselves


def test_make_enas_checks_every_setting_and_passes_the_seed():
    """make_enas: an unknown key names itself and lists every allowed one; a bad value is named
    under ``enas.``; the seed reaches the loop and the shared weights (ω's initial weights)."""
    from torchnas.enas import allowed_settings, make_enas
    from torchnas.settings import SettingsError
    space = get_space("enas-micro")
    strategy = lambda: Reinforce(space, seed=1, **ENAS_REINFORCE)
    settings = dict(TINY)
    allowed = allowed_settings(space)
    assert {"epochs", "train_steps", "derive_samples", "lr_max", "batch_size", "net", "data"} <= allowed
    assert not {"space", "seed", "strategy", "run_dir", "shared"} & allowed
    with pytest.raises(SettingsError) as e:
        make_enas(space, strategy(), **settings, lrmax=0.1)
    assert str(e.value) == (f"enas.lrmax is not a setting of ENAS on 'enas-micro'; enas takes: "
                            f"{', '.join(sorted(allowed))}")
    with pytest.raises(SettingsError, match=r"^enas\.derive_samples = 0: "):
        make_enas(space, strategy(), **{**settings, "derive_samples": 0})
    with pytest.raises(SettingsError, match=r"^enas\.lr_max = -1: "):
        make_enas(space, strategy(), **settings, lr_max=-1)
    assert make_enas(space, strategy(), **settings).seed == 0                  # the default seed
    a, b, c = (make_enas(space, strategy(), seed=s, **settings) for s in (4, 4, 5))
    assert a.seed == 4 and c.seed == 5
    first = lambda s: next(iter(s.net.state_dict().values()))
    assert torch.equal(first(a), first(b)) and not torch.equal(first(a), first(c))
    assert a.shared.training.epochs == TINY["epochs"]


def test_controller_step_records_the_mean_metric_and_epochs_their_own_time(tmp_path, monkeypatch):
    """A controller step's record holds the mean of its samples' metric (scripted rewards);
    an epoch's ``seconds`` is its own clock time (a clock that ticks 10 s per reading); a
    warm-up epoch after the first draws from Random(seed * 1_000_003 + epoch)."""
    import itertools
    import random
    import time
    s = _search(tmp_path, warmup_epochs=2, epochs=3)
    s.epoch = 1
    ref = random.Random(1 * 1_000_003 + 1)
    assert s.sampler()(4) == [s.space.random(ref) for _ in range(4)]
    s.epoch = 0
    scripted = itertools.cycle([0.2, 0.5, 0.8, 0.1, 0.3, 0.9])
    monkeypatch.setattr(s, "rewards", lambda pairs: [next(scripted) for _ in pairs])
    steps = s.train_controller()
    assert [x[s.metric] for x in steps] == [pytest.approx(0.5), pytest.approx(13 / 30)]
    ticks = itertools.count(0, 10.0)
    monkeypatch.setattr(time, "perf_counter", lambda: next(ticks))
    s.run()
    assert all(e["seconds"] >= 10 and e["seconds"] % 10 == 0 for e in s.run_dir.records("epochs.jsonl"))
