"""The image-classification task by hand: its retraining, its export and ENAS's shared-weight
phase on images, each with a stand-in space whose networks record how they were built (written
from mutation-testing survivors of ``tasks/images.py`` and ``tasks/base.py``, issue 11)."""
import re

import pytest
import torch
from torch import nn

import torchnas.tasks.images as task
from torchnas.data import load_image_data
from torchnas.nn import count_flops
from torchnas.runs import RunDir, RunError
from torchnas.settings import SettingsError
from torchnas.tasks.images import ImageClassification, ImageSharedWeights
from torchnas.training import Training, arch_seed


class Net(nn.Module):
    """A linear classifier that takes (and ignores) an architecture, like a shared network."""

    def __init__(self, in_channels, num_classes, pixels=64):
        super().__init__()
        self.fc = nn.Linear(in_channels * pixels, num_classes)

    def forward(self, x, arch=None):
        return self.fc(x.flatten(1))


class StandIn:
    """A space with the builders the task calls; ``built`` records each call's arguments."""
    name = "stand-in"

    def __init__(self, pixels=64):
        self.built, self.pixels = [], pixels        # pixels: height x width of the images

    def child(self, arch, in_channels, num_classes, width: int = 4, aux_head: bool = False, image_size: int = 32):
        self.built.append(("child", arch, in_channels, num_classes,
                           {"width": width, "aux_head": aux_head, "image_size": image_size}))
        torch.manual_seed(0)
        return Net(in_channels, num_classes, self.pixels)

    def shared(self, in_channels, num_classes, **net):
        self.built.append(("shared", in_channels, num_classes, net))
        return Net(in_channels, num_classes, self.pixels)


@pytest.fixture(scope="module")
def digits():
    return load_image_data("digits")


@pytest.fixture
def seen(monkeypatch):
    """The task's ``Training`` replaced by one that records its settings (``seen["kw"]``) and
    the splits it is judged on, and reports each epoch as 0.123456 s."""
    seen = {"splits": []}

    class Recorded(Training):
        def __init__(self, model, data, **kw):
            seen["kw"] = kw
            super().__init__(model, data, **kw)

        def train_epoch(self, *a, **kw):
            return {**super().train_epoch(*a, **kw), "seconds": 0.123456}

        def accuracy(self, split):
            seen["splits"].append(split)
            return super().accuracy(split)
    monkeypatch.setattr(task, "Training", Recorded)
    return seen


def test_image_retraining_by_hand(tmp_path, seen, digits):
    """``ImageClassification.retrain``: the child built with the run's network settings (the
    aux head's image size from the data unless given), trained with the architecture's seed;
    one record an epoch (validation accuracy, lr, seconds to 3 decimals) passed to ``on_epoch``;
    the result's fields; the trained weights saved."""
    space, arch = StandIn(), "stand-in:a"
    train = {"epochs": 2, "batch_size": 64, "lr": 0.05, "augment": False}
    cfg = {"arch": arch, "seed": 3, "data": {"name": "digits"}, "net": {"width": 2, "aux_head": True},
           "train": train}
    run = RunDir(tmp_path / "run").create(cfg)
    records = []
    result = ImageClassification().retrain(run, cfg, space, arch, on_epoch=records.append)
    assert space.built == [("child", arch, 1, 10, {"width": 2, "aux_head": True, "image_size": 8})]
    assert seen["kw"] == {"seed": arch_seed(3, arch), **train}
    hist = run.records(RunDir.HISTORY)
    assert records == hist and [h["epoch"] for h in hist] == [1, 2]
    assert [set(h) for h in hist] == [{"epoch", "loss", "valid_acc", "lr", "seconds"}] * 2
    assert [h["seconds"] for h in hist] == [0.123, 0.123] and all(0 < h["lr"] <= 0.05 for h in hist)
    model = Net(1, 10)
    model.load_state_dict(torch.load(run.path / RunDir.MODEL))
    xs = ((digits.test_x.float() / 255 - digits.mean.view(1, -1, 1, 1)) / digits.std.view(1, -1, 1, 1))
    test_acc = (model(xs).argmax(1) == digits.test_y).float().mean().item()
    assert seen["splits"] == ["valid", "valid", "test"]
    assert set(result) == {"arch", "test_acc", "valid_acc", "epochs", "params", "flops", "train_seconds", "data",
                           "test_images", "finished"}
    assert result["test_acc"] == pytest.approx(test_acc, abs=1e-6) and result["valid_acc"] == hist[-1]["valid_acc"]
    assert (result["arch"], result["epochs"], result["params"], result["train_seconds"], result["data"],
            result["test_images"]) == (arch, 2, 8 * 8 * 10 + 10, 0.25, "digits", len(digits.test_y))
    assert result["flops"] == count_flops(Net(1, 10), (1, 8, 8))
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", result["finished"])
    # an image size given is kept; no aux head, no image size
    for net, size in (({"aux_head": True, "image_size": 5}, 5), ({}, 32)):
        space.built.clear()
        cfg = {**cfg, "net": net}
        ImageClassification().retrain(RunDir(tmp_path / f"run{size}").create(cfg), cfg, space, arch)
        assert space.built[0][4]["image_size"] == size


def test_image_export_network_by_hand(tmp_path, digits):
    """``export_network``: the child with the run's settings, a fixed example input of two
    images, the input's normalisation and classes; a data set that does not load still gives
    the shape of a known one, and an unknown one is one clear error."""
    space, ic = StandIn(), ImageClassification()
    model, (example,), meta = ic.export_network(space, "stand-in:a", {"data": {"name": "digits"}},
                                                {"aux_head": True}, {}, tmp_path)
    assert space.built == [("child", "stand-in:a", 1, 10, {"width": 4, "aux_head": True, "image_size": 8})]
    assert torch.equal(example, torch.randn((2, 1, 8, 8), generator=torch.Generator().manual_seed(0)))
    assert meta == {"input": {"normalize": {"x": "(x_uint8 / 255 - mean) / std, per channel",
                                            "mean": [float(v) for v in digits.mean],
                                            "std": [float(v) for v in digits.std]},
                              "classes": list(digits.classes)}}
    space.built.clear()
    missing = {"name": "cifar10", "data_dir": str(tmp_path / "nothing")}
    model, (example,), meta = ic.export_network(space, "stand-in:a", {"data": missing}, {"aux_head": True}, {},
                                                tmp_path)
    assert space.built[0][2:] == (3, 10, {"width": 4, "aux_head": True, "image_size": 32})
    assert example.shape == (2, 3, 32, 32)
    assert set(meta) == {"input"} and set(meta["input"]) == {"normalize"}
    assert meta["input"]["normalize"].startswith("unknown: the data did not load (")
    with pytest.raises(RunError) as e:
        ic.export_network(space, "stand-in:a", {"data": {"name": "folder", "path": str(tmp_path / "none")}}, {}, {},
                          tmp_path)
    assert str(e.value).startswith("the run's input shape comes from its data set, which does not load: ")
    class TableOnly:
        name = "table"
    with pytest.raises(ValueError) as e:
        ic.check_exportable(TableOnly(), "x")
    assert str(e.value) == "space 'table' has no network to export (x is looked up in a table)"
    assert ic.check_exportable(space, "x") is None


def test_image_shared_weights_by_hand(seen, digits):
    """``ImageSharedWeights``: the defaults it hands the training loop (ENAS ``src/cifar10/main.py``),
    every setting passed on, its refusals, the reward minibatch drawn from the validation split
    with its own generator, and a divergence."""
    space = StandIn()
    w = ImageSharedWeights(space, {"name": "digits"}, device="cpu")
    assert space.built == [("shared", 1, 10, {})]
    assert seen["kw"] == {"epochs": 10, "batch_size": 128, "lr": 0.05, "momentum": 0.9, "nesterov": True,
                          "weight_decay": 1e-4, "schedule": "cosine_restarts", "augment": "auto", "seed": 0,
                          "channels_last": True, "lr_min": 0.0005, "lr_t0": 10, "lr_t_mul": 2, "aux_weight": 0.0,
                          "aux_train_head": True, "grad_clip": 5.0, "precision": "auto", "cudnn_benchmark": False,
                          "device": "cpu", "max_batches": None}
    assert (w.batch_size, w.reward_batch, w.reward_bn) == (128, 128, "train")
    settings = dict(epochs=3, batch_size=32, lr_max=0.1, lr_min=0.001, lr_t0=2, lr_t_mul=3, momentum=0.5,
                    nesterov=False, weight_decay=1e-3, grad_clip=None, augment=False, aux_weight=0.4,
                    aux_train_head=False, reward_batch=50, reward_bn="eval", channels_last=False,
                    max_train_batches=4, precision="fp32", cudnn_benchmark=True, seed=5)
    space.built.clear()
    w = ImageSharedWeights(space, {"name": "digits", "valid_size": 0.3}, net={"width": 2, "aux_head": True},
                           device="cpu", **settings)
    assert space.built == [("shared", 1, 10, {"width": 2, "aux_head": True, "image_size": 8})]
    assert seen["kw"] == {"epochs": 3, "batch_size": 32, "lr": 0.1, "momentum": 0.5, "nesterov": False,
                          "weight_decay": 1e-3, "schedule": "cosine_restarts", "augment": False, "seed": 5,
                          "channels_last": False, "lr_min": 0.001, "lr_t0": 2, "lr_t_mul": 3, "aux_weight": 0.4,
                          "aux_train_head": False, "grad_clip": None, "precision": "fp32", "cudnn_benchmark": True,
                          "device": "cpu", "max_batches": 4}
    assert (w.batch_size, w.reward_batch, w.reward_bn) == (32, 50, "eval")
    assert len(w.data.valid_y) == round(0.3 * (len(digits.train_y) + len(digits.valid_y)))
    # the reward minibatch: reward_batch validation images by a permutation of w.generator
    x, y = w.valid_batch()
    idx = torch.randperm(len(w.data.valid_y), generator=torch.Generator().manual_seed(5))[:50]
    assert torch.equal(y, w.data.valid_y[idx]) and torch.equal(x, w.training._input(w.data.valid_x[idx]))
    # refusals, each one line naming the setting
    with pytest.raises(ValueError) as e:
        ImageSharedWeights(space, {"name": "digits"}, reward_bn="running", device="cpu")
    assert str(e.value) == "reward_bn must be 'train' (minibatch statistics) or 'eval', not 'running'"
    assert ImageSharedWeights(space, {"name": "digits"}, reward_bn="eval", device="cpu").reward_bn == "eval"
    with pytest.raises(SettingsError) as e:
        ImageSharedWeights(space, {"name": "digits"}, net={"depth": 3}, device="cpu")
    assert str(e.value) == "enas.net.depth is not a setting of enas.net; it takes: aux_head, image_size, width"
    with pytest.raises(SettingsError) as e:
        ImageSharedWeights(space, {"name": "digits", "size": 3}, device="cpu")
    assert str(e.value).startswith("enas.data.size is not a setting of enas.data; it takes: data_dir, image_size, name, ")
    w.training.train_epoch = lambda arch_fn: {"diverged": "loss nan at step 3"}
    with pytest.raises(RunError) as e:
        w.train_epoch(lambda n: ["a"] * n)
    assert str(e.value) == "shared-weight training diverged: loss nan at step 3; lower enas.lr_max (or enas.grad_clip)"


def test_train_settings_are_checked_under_their_name():
    """``Task.check_train_settings``: messages name the ``train:`` section; the seed is the
    run's, not a training setting; a device that is not here is refused now."""
    ic = ImageClassification()
    with pytest.raises(SettingsError) as e:
        ic.check_train_settings({"epochs": 1, "bogus": 2})
    assert str(e.value).startswith("train.bogus is not a setting of train; it takes: ")
    with pytest.raises(SettingsError) as e:
        ic.check_train_settings({"epochs": 1, "seed": 2})
    assert str(e.value).startswith("train.seed is not a setting of train; it takes: ")
    assert "seed" not in str(e.value).split("it takes: ")[1].split(", ")
    with pytest.raises(ValueError, match="device 'cuda:99'"):
        ic.check_train_settings({"epochs": 1, "device": "cuda:99"})
    assert ic.check_train_settings({"epochs": 1, "device": "cpu"}) == {"epochs": 1, "device": "cpu"}


def test_retraining_refuses_a_network_setting_edited_into_its_config(tmp_path):
    """A retraining run whose config.yaml was edited after it started is checked again on
    resume: a network setting the space does not take is one line naming it, before training."""
    import yaml
    from torchnas import api
    run = api.train(arch="nas-cnn:3,3,8,-", epochs=1, out=tmp_path / "run", set=["train.batch_size=256"])
    (tmp_path / "run" / RunDir.RESULT).unlink()
    cfg = yaml.safe_load((tmp_path / "run" / RunDir.CONFIG).read_text())
    cfg["net"] = {**(cfg.get("net") or {}), "depth": 3}
    (tmp_path / "run" / RunDir.CONFIG).write_text(yaml.safe_dump(cfg))
    with pytest.raises(SettingsError) as e:
        api.train(resume=run.path)
    assert str(e.value).startswith("final_net.depth is not a setting of final_net; it takes: ")
    assert not (tmp_path / "run" / RunDir.RESULT).exists()


def test_network_settings_are_checked_against_the_space():
    """``Task.check_net_settings``: messages name ``final_net`` unless told otherwise; a space
    that builds no network (a table) takes none."""
    ic = ImageClassification()
    with pytest.raises(SettingsError) as e:
        ic.check_net_settings(StandIn(), {"depth": 2})
    assert str(e.value) == "final_net.depth is not a setting of final_net; it takes: aux_head, image_size, width"
    assert ic.check_net_settings(StandIn(), {"width": "3"}) == {"width": 3}

    class Table:
        name = "table"
    assert ic.check_net_settings(Table(), None) == {} and ic.check_net_settings(Table(), {}) == {}
    with pytest.raises(ValueError) as e:
        ic.check_net_settings(Table(), {"width": 2}, "enas.net")
    assert str(e.value) == "enas.net: space 'table' builds no network, so it takes no network settings"


def test_aux_head_is_sized_by_the_image_height(tmp_path):
    """Images need not be square (an image folder of 6 x 10 images): the auxiliary head's
    ``image_size`` is their height, in the retraining, the export and the shared weights."""
    from PIL import Image
    import numpy as np
    for k, cls in enumerate(["a", "b"]):
        (tmp_path / "imgs" / cls).mkdir(parents=True)
        for i in range(10):
            Image.fromarray(np.full((6, 10, 3), 20 * i + k, np.uint8)).save(tmp_path / "imgs" / cls / f"{i}.png")
    data = {"name": "folder", "path": str(tmp_path / "imgs"), "valid_size": 0.2}
    space = StandIn(pixels=6 * 10)
    ImageSharedWeights(space, data, net={"aux_head": True}, device="cpu")
    ImageClassification().export_network(space, "stand-in:a", {"data": data}, {"aux_head": True}, {}, tmp_path)
    cfg = {"arch": "stand-in:a", "seed": 0, "data": data, "net": {"aux_head": True},
           "train": {"epochs": 1, "batch_size": 8, "augment": False}}
    ImageClassification().retrain(RunDir(tmp_path / "run").create(cfg), cfg, space, "stand-in:a")
    assert [b[-1]["image_size"] if b[0] == "shared" else b[4]["image_size"] for b in space.built] == [6, 6, 6]
    assert [b[0] for b in space.built] == ["shared", "child", "child"]
