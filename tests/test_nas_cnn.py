import random

import pytest
import torch

from tests.conftest import require_module
from torchnas.config import build_space, load_preset
from torchnas.controller import Controller
from torchnas.nn import count_flops
from torchnas.evaluators.trainer import ChildTrainer
from torchnas.spaces import ArchitectureError, NASCNNSpace, get_space
from torchnas.spaces.nas_cnn import concat_padded
from torchnas.strategies import Reinforce
from torchnas.viz import graph_of

SPACES = [NASCNNSpace(layers=6), NASCNNSpace(layers=7, strides=(1, 2, 3)),
          NASCNNSpace(layers=8, num_filters=(4, 8), strides=(1, 2), pool_after=(2, 5)),
          NASCNNSpace(layers=5, num_filters=(4, 8), strides=(1, 2, 3), stride_shape="separate"),
          build_space(load_preset("nas-cnn-strides-tiny"))]     # Zoph & Le Table 1's v2 row, shrunk (issue 28)


def _trace(model, x):
    """Shapes of each conv's input and output, recorded by hooks during one forward pass."""
    seen = []
    hooks = [c.register_forward_hook(lambda m, i, o: seen.append((tuple(i[0].shape), tuple(o.shape))))
             for c in model.convs]
    logits = model(x)
    for h in hooks:
        h.remove()
    return logits, seen


@pytest.mark.parametrize("space", SPACES)
def test_children_obey_the_construction_rules(space):
    rng = random.Random(0)
    x = torch.randn(2, 3, 32, 32)
    for _ in range(15):
        arch = space.random(rng)
        layers = space.layers_of(arch)
        model = space.child(arch, 3, 10)
        logits, seen = _trace(model, x)
        assert logits.shape == (2, 10) and torch.isfinite(logits).all()
        out_hw = []
        for i, (layer, (inp, out)) in enumerate(zip(layers, seen)):
            if not layer["inputs"]:                       # no input: the image
                assert inp == (2, 3, 32, 32)
            else:                                         # inputs concatenated along depth,
                assert inp[1] == sum(layers[j]["nf"] for j in layer["inputs"])
                assert inp[2:] == (max(out_hw[j][0] for j in layer["inputs"]),   # padded to the largest
                                   max(out_hw[j][1] for j in layer["inputs"]))
            assert out[1] == layer["nf"]
            assert out[2:] == (-(-inp[2] // layer["stride"][0]), -(-inp[3] // layer["stride"][1]))
            hw = out[2:]
            if layer["pool"]:
                hw = (-(-hw[0] // 2), -(-hw[1] // 2))
            out_hw.append(hw)
        used = {j for layer in layers for j in layer["inputs"]}
        loose = [i for i in range(len(layers)) if i not in used]
        assert model.loose_ends == loose and len(layers) - 1 in loose      # the last layer always ends
        assert model.classifier.in_features == sum(layers[i]["nf"] for i in loose)
        flops = sum(2 * o[1] * i[1] * layers[k]["fh"] * layers[k]["fw"] * o[2] * o[3]
                    for k, (i, o) in enumerate(seen)) + 2 * model.classifier.in_features * 10
        assert count_flops(model, (3, 32, 32)) == flops


@pytest.mark.parametrize("space", SPACES + [build_space(load_preset(p)) for p in ("nas-cnn", "nas-cnn-pool")]
                         + [NASCNNSpace(layers=5, block_layers=3, pool_after=(1, 3), pooled_skips="pool",
                                        block_output="last")])
def test_flops_without_building_the_network_equal_the_counted_ones(space):
    """The simulator's durations (issue 29): ``space.flops`` from the layer rules, against the
    hooks' count on the built child, for random children (skips of every size, strides, pools,
    blocks) at two image sizes."""
    rng = random.Random(0)
    for _ in range(6):
        arch = space.random(rng)
        for image, classes in ((32, 10), (17, 3)):
            assert space.flops(arch, 3, image, classes) == count_flops(space.child(arch, 3, classes), (3, image, image))


def test_zero_padding_is_bottom_right_with_zeros():
    a, b = torch.ones(1, 2, 4, 4), torch.full((1, 3, 2, 3), 2.0)
    y = concat_padded([a, b])
    assert y.shape == (1, 5, 4, 4)
    assert (y[:, 2:, :2, :3] == 2).all() and (y[:, 2:, 2:, :] == 0).all() and (y[:, 2:, :, 3:] == 0).all()


def test_loose_ends_feed_the_classifier():
    space = NASCNNSpace(layers=3, num_filters=(5, 7))
    # layer 1 takes layer 0, layer 2 takes the image: loose ends are layers 1 and 2
    arch = space.parse("nas-cnn:3,3,5,-,3,3,7,0,1,1,5,-")
    model = space.child(arch, 1, 4)
    assert model.loose_ends == [1, 2] and model.classifier.in_features == 12
    assert model.convs[2].in_channels == 1


def test_strings_of_any_depth():
    space = get_space("nas-cnn")
    a = NASCNNSpace(layers=9).random(random.Random(3))
    s = str(a)
    assert space.parse(s) == a and len(space.layers_of(space.parse(s))) == 9
    with pytest.raises(ArchitectureError, match="4 values per layer"):
        space.parse("nas-cnn:3,3,24")
    with pytest.raises(ArchitectureError, match=r"layer1.fw.*one of 1, 3, 5, 7"):
        space.parse("nas-cnn:3,3,24,-,3,4,24,0")
    with pytest.raises(ArchitectureError, match=r"layer1.inputs"):
        space.parse("nas-cnn:3,3,24,-,3,3,24,1")
    with pytest.raises(ValueError, match="odd"):
        NASCNNSpace(filter_sizes=(2, 3))


def test_progressive_depth_schedule():
    space = NASCNNSpace(layers=8)
    strat = Reinforce(space, batch_size=4, depth_schedule={"start": 4, "step": 2, "every": 8})
    depths = []
    for _ in range(6):
        archs = strat.ask()
        depths.append(len(space.layers_of(archs[0])))
        strat.tell(archs, [0.5] * 4)
    assert depths == [4, 4, 6, 6, 8, 8]
    with pytest.raises(ValueError, match="needs a space with a depth"):
        Reinforce(get_space("nb201"), depth_schedule={"start": 2})


def test_controller_frequencies_on_the_cnn_space_program():
    space = NASCNNSpace(layers=3, filter_sizes=(1, 3), num_filters=(4,))
    c = Controller(space, hidden_size=35, num_layers=2, init_range=0.08)
    s = c.sample(64, torch.Generator().manual_seed(0))
    assert torch.allclose(c.log_prob(s.archs).log_probs, s.log_probs, atol=1e-5)


DIGITS = {"name": "digits", "per_class": 40}


def test_child_trained_on_digits_beats_chance():
    space = NASCNNSpace(layers=3, num_filters=(16,))
    ev = ChildTrainer(space, data={"name": "digits"}, epochs=4, batch_size=32, lr=0.05, last_k=2)
    arch = space.parse("nas-cnn:3,3,16,-,3,3,16,0,3,3,16,1")
    out = ev.evaluate(arch)
    acc = out.metrics["valid_acc_best_last"]
    assert acc > 0.6                                     # chance is 0.1
    assert out.reward == pytest.approx(acc ** 3)
    assert out.metrics["params"] > 0 and out.metrics["flops"] > 0 and out.metrics["epochs"] == 4
    again = ev.evaluate(arch)                            # seeded per architecture
    assert again.reward == out.reward


def test_diverging_child_gets_reward_zero_and_the_search_goes_on():
    from torchnas.search import Search
    from torchnas.strategies import RandomSearch
    space = NASCNNSpace(layers=2, num_filters=(8,))
    ev = ChildTrainer(space, data=DIGITS, epochs=2, batch_size=32, lr=1e12, last_k=1)
    result = Search(space, RandomSearch(space, seed=0, batch_size=2), ev, budget=3).run()
    assert len(result.evaluations) == 3
    for rec in result.evaluations:
        assert rec["reward"] == 0.0 and rec["metrics"]["diverged"] is True
        assert "non-finite loss" in rec["metrics"]["reason"]


class CrashAfter(ChildTrainer):
    """Simulates a kill: raises on the (k+1)-th evaluation."""

    def __init__(self, k, **kw):
        super().__init__(**kw)
        self.k = k

    def evaluate(self, arch):
        if self.k == 0:
            raise KeyboardInterrupt
        self.k -= 1
        return super().evaluate(arch)


def _tiny(cls=ChildTrainer, **kw):
    space = NASCNNSpace(layers=3, num_filters=(4, 8))
    return space, cls(space=space, data=DIGITS, epochs=1, batch_size=64, lr=0.05, last_k=1, **kw)


@pytest.mark.parametrize("backend", ["local", "ray"])
def test_parallel_equals_serial(backend):
    from torchnas.evaluators.executors import LocalPool, RayPool, Serial
    from torchnas.search import Search
    if backend == "ray":
        require_module("ray")
    logs = []
    parallel = (lambda: LocalPool(workers=2, threads=1)) if backend == "local" else (lambda: RayPool(workers=2, threads=1))
    for executor in (Serial(threads=1), parallel()):
        space, ev = _tiny()
        strat = Reinforce(space, seed=4, batch_size=4, lr=0.01)
        try:
            res = Search(space, strat, ev, budget=8, executor=executor).run()
        finally:
            executor.close()
        logs.append([(r["arch"], r["reward"], r["metrics"]["params"]) for r in res.evaluations])
        logs.append(strat.baseline)
    assert logs[0] == logs[2] and logs[1] == logs[3]


def test_trained_children_search_resumes_exactly(tmp_path):
    from torchnas.runs import RunDir
    from torchnas.search import Search

    def search(run, ev):
        space = ev.space
        return Search(space, Reinforce(space, seed=2, batch_size=3, lr=0.01), ev, budget=7, run_dir=run,
                      checkpoint_every=0).resume()
    ref = RunDir(tmp_path / "ref").create({})
    search(ref, _tiny()[1]).run()
    run = RunDir(tmp_path / "run").create({})
    with pytest.raises(KeyboardInterrupt):
        search(run, _tiny(CrashAfter, k=4)[1]).run()
    search(run, _tiny()[1]).run()
    strip = lambda recs: [(r["arch"], r["reward"]) for r in recs]
    assert strip(run.records("evaluations.jsonl")) == strip(ref.records("evaluations.jsonl"))
    assert run.records("steps.jsonl") == ref.records("steps.jsonl")


def test_retraining_resumes_to_the_same_result(tmp_path, monkeypatch):
    from torchnas.training import Training
    from torchnas.runs import RunDir
    from torchnas.train import retrain, train_config
    space = NASCNNSpace(layers=2, num_filters=(8,))
    cfg = train_config("nas-cnn:3,3,8,-,3,3,8,0", space.config(), DIGITS,
                       {"epochs": 3, "batch_size": 32, "lr": 0.05}, seed=1)
    ref = retrain(RunDir(tmp_path / "ref").create(cfg))
    run = RunDir(tmp_path / "run").create(cfg)
    real, calls = Training.train_epoch, {"n": 0}

    def flaky(self):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(self)
    monkeypatch.setattr(Training, "train_epoch", flaky)
    with pytest.raises(KeyboardInterrupt):
        retrain(run)
    monkeypatch.setattr(Training, "train_epoch", real)
    assert len(run.records("history.jsonl")) == 1
    res = retrain(run)
    assert res["test_acc"] == ref["test_acc"]
    strip = lambda h: [(r["epoch"], r["loss"], r["valid_acc"]) for r in h]
    assert strip(run.records("history.jsonl")) == strip(RunDir(tmp_path / "ref").records("history.jsonl"))
    assert (run.path / "model.pt").exists()


def test_executor_settings_are_checked():
    from torchnas.config import ConfigError, build_executor
    from torchnas.evaluators.executors import make_executor
    with pytest.raises(ValueError, match="'local' or 'ray'"):
        make_executor(backend="cluster")
    with pytest.raises(ValueError, match="backend: ray"):
        make_executor(workers=2, address="auto")
    with pytest.raises(ConfigError, match="backend"):
        build_executor({"executor": {"nodes": 3}})


def test_separate_stride_height_and_width():
    """``stride_shape: separate`` (Zoph & Le Fig. 2: filter height, filter width, stride height,
    stride width, number of filters): five choices per layer, and a conv strided (sh, sw)."""
    space = NASCNNSpace(layers=2, num_filters=(4, 8), strides=(1, 2, 3), stride_shape="separate")
    assert [d.name for d in space.decisions[:space.per_layer]] == [
        "layer0.fh", "layer0.fw", "layer0.sh", "layer0.sw", "layer0.nf", "layer0.inputs"]
    arch = space.parse("nas-cnn:3,5,1,3,8,-,1,1,3,1,4,0")
    layers = space.layers_of(arch)
    assert [l["stride"] for l in layers] == [(1, 3), (3, 1)]
    model = space.child(arch, 3, 10)
    assert [c.stride for c in model.convs] == [(1, 3), (3, 1)]
    _, seen = _trace(model, torch.randn(1, 3, 12, 12))
    assert [o[2:] for _, o in seen] == [(12, 4), (4, 4)]
    assert "stride 1x3" in graph_of(arch).node("layer0").label
    assert space.config()["stride_shape"] == "separate"
    assert get_space(**space.config()).format(arch) == "nas-cnn:3,5,1,3,8,-,1,1,3,1,4,0"
    assert NASCNNSpace(strides=(1, 2)).per_layer == 5                  # square: one stride decision
    with pytest.raises(ValueError, match="stride_shape"):
        NASCNNSpace(stride_shape="diagonal")


def test_child_trainer_defaults_are_the_papers():
    """Zoph & Le §4.1 (50 epochs, SGD lr 0.1, Nesterov momentum 0.9, weight decay 1e-4, reward
    the cube of the best of the last 5 validation accuracies) and our documented choices
    (batch 128, cosine, digits when no data is named, channels_last, seed 0, device auto)."""
    import inspect
    params = inspect.signature(ChildTrainer).parameters
    assert {k: p.default for k, p in params.items() if k not in ("space", "data")} == {
        "epochs": 50, "batch_size": 128, "lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 1e-4,
        "schedule": "cosine", "reward": "acc3", "last_k": 5, "augment": "auto", "seed": 0, "channels_last": True,
        "precision": "auto", "device": "auto"}
    ev = ChildTrainer(NASCNNSpace())
    assert (ev.epochs, ev.batch_size, ev.lr, ev.momentum, ev.nesterov, ev.weight_decay, ev.schedule, ev.reward,
            ev.last_k, ev.augment, ev.seed, ev.channels_last, ev.precision, ev.device) == (
        50, 128, 0.1, 0.9, True, 1e-4, "cosine", "acc3", 5, "auto", 0, True, "auto", "auto")
    assert ChildTrainer(NASCNNSpace()).data_cfg == {"name": "digits"}
    assert ChildTrainer(NASCNNSpace(), {"name": "cifar10"}).data_cfg == {"name": "cifar10"}


@pytest.mark.parametrize("kwargs, message", [
    ({"epochs": 0}, "trainer needs epochs, batch_size, last_k >= 1 and lr > 0 (got 0, 128, 5, 0.1)"),
    ({"batch_size": 0}, "trainer needs epochs, batch_size, last_k >= 1 and lr > 0 (got 50, 0, 5, 0.1)"),
    ({"last_k": 0}, "trainer needs epochs, batch_size, last_k >= 1 and lr > 0 (got 50, 128, 0, 0.1)"),
    ({"lr": 0.0}, "trainer needs epochs, batch_size, last_k >= 1 and lr > 0 (got 50, 128, 5, 0.0)"),
    ({"reward": "acc2"}, "trainer reward must be 'acc3' (Zoph & Le: max of last 5 validation accuracies, cubed) "
                         "or 'acc', not 'acc2'"),
])
def test_child_trainer_refuses_bad_settings_at_their_edges(kwargs, message):
    with pytest.raises(ValueError) as e:
        ChildTrainer(NASCNNSpace(), **kwargs)
    assert str(e.value) == message
    edge = {k: {"epochs": 1, "batch_size": 1, "last_k": 1, "lr": 1e-12, "reward": "acc"}[k] for k in kwargs}
    ChildTrainer(NASCNNSpace(), **edge)                                  # one step inside is accepted


def test_child_trainer_evaluate_by_hand(monkeypatch):
    """evaluate with a scripted training loop: the Training it builds gets every setting, the
    child's seed is arch_seed(seed, arch), only the last ``last_k`` epochs' validation
    accuracies count, and every metric is its formula; a divergence scores 0 and says why."""
    import torchnas.evaluators.trainer as T
    from torchnas.training import arch_seed
    built, script = {}, {"acc": [0.9, 0.1, 0.2, 0.6, 0.3], "diverge_at": None}

    class Scripted:
        def __init__(self, model, data, *args, **kwargs):
            built.update(model=model, args=args, kwargs=kwargs)
            self.epoch = 0

        def train_epoch(self):
            self.epoch += 1
            if self.epoch == script["diverge_at"]:
                return {"diverged": "non-finite loss (nan) at epoch 2, step 9"}
            return {"loss": 2.0 / self.epoch, "images": 100, "seconds": 0.0625 * self.epoch, "lr": 0.1}

        def accuracy(self, split):
            assert split == "valid"
            built.setdefault("validated", []).append(self.epoch)
            return script["acc"][self.epoch - 1]
    monkeypatch.setattr(T, "Training", Scripted)
    space = NASCNNSpace(layers=2, num_filters=(4, 8))
    arch = space.parse("nas-cnn:3,3,4,-,1,1,8,0")
    ev = ChildTrainer(space, {"name": "digits", "per_class": 10}, epochs=5, batch_size=16, lr=0.03, momentum=0.5,
                      nesterov=False, weight_decay=3e-4, schedule="constant", last_k=3, augment=False, seed=7,
                      channels_last=False, device="cpu")
    out = ev.evaluate(arch)
    assert built["args"] == (5, 16, 0.03, 0.5, False, 3e-4, "constant", False, arch_seed(7, arch), False)
    assert built["kwargs"] == {"device": "cpu", "precision": "auto"}
    model = built["model"]
    assert out.reward == pytest.approx(0.6 ** 3)                          # best of epochs 3-5, cubed; not 0.9
    assert built["validated"] == [3, 4, 5]                                # validation costs only the last k
    seconds = sum(0.0625 * e for e in range(1, 6))                        # 0.9375
    assert out.metrics == {"params": sum(p.numel() for p in model.parameters()),
                           "flops": count_flops(model, (1, 8, 8)), "epochs": 5, "valid_acc": 0.3,
                           "valid_acc_best_last": 0.6, "train_loss": 2.0 / 5, "train_seconds": round(seconds, 3),
                           "images_per_s": round(500 / seconds, 1)}
    assert out.metrics["train_seconds"] == 0.938 and out.metrics["images_per_s"] == 533.3
    torch.manual_seed(arch_seed(7, arch))                                 # the child's weights: seeded by arch
    assert all(torch.equal(a, b) for a, b in zip(space.child(arch, 1, 10).parameters(), model.parameters()))
    ev.reward = "acc"
    assert ev.evaluate(arch).reward == pytest.approx(0.6)
    script["diverge_at"] = 2
    out = ev.evaluate(arch)
    assert out.reward == 0.0 and {k: out.metrics[k] for k in ("epochs", "diverged", "reason")} == {
        "epochs": 2, "diverged": True, "reason": "non-finite loss (nan) at epoch 2, step 9"}


def test_child_trainer_checks_its_device_at_once():
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: cuda:0 is a valid device here")
    with pytest.raises(ValueError, match="cuda"):
        ChildTrainer(NASCNNSpace(), device="cuda:0")
