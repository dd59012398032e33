"""Zoph & Le's Table 1 rows as presets (issue 28): the stride search (v2), the pooling search with
blocks of 3 densely connected layers (v3) and "40 more filters"."""
import json
import random

import numpy as np
import pytest
import torch
from torch import nn

from torchnas.config import build_space, load_preset
from torchnas.spaces import NASCNNSpace
from torchnas.spaces.nas_cnn import concat_padded

V3 = build_space(load_preset("nas-cnn-pool"))


def _conv_inputs(model, x, unit_out=None):
    """Each block convolution's (conv → BN → ReLU) input and output, and each unit's input (and
    output, into ``unit_out``), from one forward pass in eval mode."""
    seen, unit_in, unit_out = [], [], unit_out if unit_out is not None else []
    hooks = [c.register_forward_hook(lambda m, i, o: seen.append((i[0], o))) for u in model.units for c in u.convs]
    def record(m, i, o):                    # (a hook that returns something replaces the output)
        unit_in.append(i[0])
        unit_out.append(o)
    hooks += [u.register_forward_hook(record) for u in model.units]
    model.eval()
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    return seen, unit_in


def test_the_v3_preset_is_the_papers_row():
    """§4.1: 13 predicted layers, each a block of 3 (39 conv layers), filters from [6, 12, 24, 36],
    2 pooling layers: after units 4 and 8 (conv layers 12 and 24, docs/reference-settings.md)."""
    assert (V3.layers, V3.block_layers, V3.num_filters, V3.pool_after) == (13, 3, (6, 12, 24, 36), (3, 7))
    arch = V3.random(random.Random(0))
    assert V3.layer_counts(arch) == {"conv layers": 39, "pooling layers": 2}
    model = V3.child(arch, 3, 10)
    assert len(model.convs) == 39
    assert sum(isinstance(m, nn.MaxPool2d) for m in model.modules()) == 2


@pytest.mark.parametrize("block_output", ["concat", "last"])
def test_a_block_is_densely_connected(block_output):
    """Block convolution j reads the unit's input and convolutions 0..j-1 concatenated (in that
    order), has the unit's predicted height, width and filters; the unit's output is the three
    concatenated (or the last); a pool follows exactly the listed units, halving the size."""
    space = NASCNNSpace(layers=5, block_layers=3, num_filters=(3, 5), pool_after=(1, 3), block_output=block_output)
    for seed in range(4):
        arch = space.random(random.Random(seed))
        layers = space.layers_of(arch)
        model = space.child(arch, 3, 10)
        unit_out = []
        seen, unit_in = _conv_inputs(model, torch.randn(2, 3, 16, 16), unit_out)
        for u, layer in enumerate(layers):
            convs = seen[3 * u:3 * u + 3]
            for j, (inp, out) in enumerate(convs):
                expected = torch.cat([unit_in[u]] + [o for _, o in convs[:j]], 1)
                assert torch.equal(inp, expected)
                conv = model.convs[3 * u + j]
                assert conv.kernel_size == (layer["fh"], layer["fw"]) and conv.out_channels == layer["nf"]
            outs = [o for _, o in convs]
            block = torch.cat(outs, 1) if block_output == "concat" else outs[-1]
            if layer["pool"]:
                block = torch.nn.functional.max_pool2d(block, 2, 2, ceil_mode=True)
            assert torch.equal(unit_out[u], block)
        assert [l["pool"] for l in layers] == [False, True, False, True, False]


def test_skips_across_a_pool_are_padded_or_pooled():
    """§3.3's rule zero-pads the smaller inputs to the largest (pooled_skips: pad); the other
    reading max-pools the larger down to the smallest (pool)."""
    a, b = torch.arange(32.0).view(1, 2, 4, 4), torch.ones(1, 1, 2, 2)
    padded = concat_padded([a, b])
    assert padded.shape == (1, 3, 4, 4) and padded[0, 2].sum() == 4
    pooled = concat_padded([a, b], "pool")
    assert pooled.shape == (1, 3, 2, 2)
    assert torch.equal(pooled[:, :2], torch.nn.functional.max_pool2d(a, 2)) and torch.equal(pooled[:, 2:], b)
    x = torch.randn(1, 3, 8, 8)
    for mode, size in [("pad", 8), ("pool", 4)]:         # unit 2 reads unit 0 (8x8) and unit 1 (pooled: 4x4)
        space = NASCNNSpace(layers=3, num_filters=(4,), pool_after=(1,), pooled_skips=mode)
        model = space.child(space.parse("nas-cnn:3,3,4,-,3,3,4,0,3,3,4,0+1"), 3, 10)
        seen, unit_in = _conv_inputs(model, x)
        assert unit_in[2].shape == (1, 8, size, size)
        a, b = seen[0][1], torch.nn.functional.max_pool2d(seen[1][1], 2, 2, ceil_mode=True)
        assert torch.equal(unit_in[2], concat_padded([a, b], mode))
        assert model(x).shape == (1, 10)


def test_strides_and_blocks_are_separate_rows():
    with pytest.raises(ValueError, match="strides are searched with block_layers 1"):
        NASCNNSpace(strides=(1, 2), block_layers=3)
    with pytest.raises(ValueError, match="block_output"):
        NASCNNSpace(block_output="sum")


def test_the_v2_preset_predicts_strides():
    space = build_space(load_preset("nas-cnn-strides"))
    assert (space.layers, space.strides, space.block_layers) == (20, (1, 2, 3), 1)
    assert [d.name.split(".")[1] for d in space.decisions[:space.per_layer]] == ["fh", "fw", "stride", "nf", "inputs"]


@pytest.mark.parametrize("preset", ["nas-cnn-pool", "nas-cnn-strides", "nas-cnn-pool-tiny"])
def test_extra_filters_add_exactly_that_many_to_every_layer(preset):
    """Table 1's last row: "adding 40 more filters to each layer" of the found network."""
    space = build_space(load_preset(preset))
    arch = space.random(random.Random(1))
    plain, wide = space.child(arch, 3, 10), space.child(arch, 3, 10, extra_filters=40)
    assert [w.out_channels - p.out_channels for p, w in zip(plain.convs, wide.convs)] == [40] * len(plain.convs)
    assert wide(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_weights_saved_before_blocks_still_load():
    """A child's state dict of the layout before units had blocks (``convs.i``, ``bns.i``)."""
    space = NASCNNSpace(layers=3, num_filters=(4, 8))
    arch = space.random(random.Random(0))
    model = space.child(arch, 3, 10)
    old = {}
    for k, v in model.state_dict().items():
        if k.startswith("units."):
            _, i, _, _, kind, rest = k.split(".", 5)
            k = f"{'convs' if kind == '0' else 'bns'}.{i}.{rest}"
        old[k] = v + 1 if v.is_floating_point() else v
    fresh = space.child(arch, 3, 10)
    fresh.load_state_dict(old)
    assert torch.equal(fresh.convs[1].weight, model.convs[1].weight + 1)


# -- Zoph & Le's data pipeline (augment: zoph_le) ------------------------------------------------
def _hand_zca(x01: torch.Tensor, epsilon: float) -> torch.Tensor:
    """ZCA written out: centre, covariance, eigenvectors U and values l, W = U diag((l + eps)^-1/2) U^T."""
    x = x01.reshape(len(x01), -1).double().numpy()
    mean = x.mean(0)
    cov = np.cov(x - mean, rowvar=False, bias=True)
    lam, u = np.linalg.eigh(cov)
    w = u @ np.diag(1 / np.sqrt(np.maximum(lam, 0) + epsilon)) @ u.T
    return torch.from_numpy(mean), torch.from_numpy(w)


def test_zca_whitening_is_the_hand_computed_transform():
    from torchnas.data.images import ZCA
    g = torch.Generator().manual_seed(0)
    train = torch.randint(0, 256, (40, 2, 2, 2), generator=g, dtype=torch.uint8)
    train[:, 1] = train[:, 0] // 2 + 3                  # correlated channels: whitening must decorrelate
    zca = ZCA.fit(train, epsilon=1e-3)
    mean, w = _hand_zca(train.double() / 255, 1e-3)
    assert torch.allclose(zca.mean.double(), mean, atol=1e-6) and torch.allclose(zca.matrix.double(), w, rtol=1e-4, atol=1e-3)
    x = train.float() / 255
    out = zca(x)
    assert torch.allclose(out.reshape(40, -1).double(), (x.reshape(40, -1).double() - mean) @ w, atol=1e-3)
    strong = ZCA.fit(train, epsilon=1e-9)(x).reshape(40, -1).double()
    cov = strong.T @ strong / 40                        # whitened: the covariance is the identity on the
    lam = torch.linalg.eigvalsh(torch.from_numpy(np.cov(train.reshape(40, -1).double().numpy(), rowvar=False)))
    rank = int((lam > 1e-6).sum())                      # data's own subspace (rank-deficient here)
    assert torch.linalg.eigvalsh(cov)[-rank:].sub(1).abs().max() < 1e-2


def test_zca_is_fitted_on_the_training_split_only():
    from torchnas.data.images import load_image_data
    data = load_image_data("digits", seed=0)
    mean, w = _hand_zca(data.train_x.double() / 255, 0.1)
    zca = data.zca()
    assert torch.allclose(zca.mean.double(), mean, atol=1e-6) and torch.allclose(zca.matrix.double(), w, atol=1e-3)
    everything = torch.cat([data.train_x, data.valid_x, data.test_x])
    assert not torch.allclose(zca.mean.double(), everything.double().mean(0).flatten() / 255, atol=1e-3)


def test_upsample_crop_and_flip():
    """The upsampled image (bilinear, 9/8 of the size) cropped back to the size, then flipped."""
    from torchnas.data.images import UpsampleCrop
    x = torch.randn(64, 3, 8, 8)
    out = UpsampleCrop(flip=True)(x, torch.Generator().manual_seed(0))
    big = torch.nn.functional.interpolate(x, size=(9, 9), mode="bilinear", align_corners=False)
    crops = {(dy, dx, f): big[:, :, dy:dy + 8, dx:dx + 8].flip(3) if f else big[:, :, dy:dy + 8, dx:dx + 8]
             for dy in (0, 1) for dx in (0, 1) for f in (0, 1)}
    found = [next(k for k, c in crops.items() if torch.equal(out[i], c[i])) for i in range(64)]
    assert len(set(found)) == 8                         # every offset and both flips occur


def test_retraining_and_export_apply_the_stored_whitening(tmp_path):
    """``augment: zoph_le``: the retraining stores its whitening; model.pt and the exported network
    take x_uint8 / 255 and whiten it as the training pipeline did."""
    from torchnas.cli import main
    from torchnas.data.images import load_image_data
    from torchnas.export import export_run, import_file
    from torchnas.runs import RunDir
    from torchnas.training import Training
    space = build_space(load_preset("nas-cnn-tiny"))
    arch = space.format(space.random(random.Random(0)))
    run = tmp_path / "r"
    assert main(["train", "--arch", arch, "--preset", "nas-cnn-tiny", "--epochs", "1", "--out", str(run), "--quiet",
                 "--set", "train.augment=zoph_le"]) == 0
    stored = torch.load(run / RunDir.WHITENING, weights_only=True)
    data = load_image_data("digits")
    assert torch.equal(stored["matrix"], data.zca().matrix)
    state = torch.load(run / RunDir.MODEL, weights_only=True)
    child = space.child(space.parse(arch), 1, 10)
    child.load_state_dict({k[4:]: v for k, v in state.items() if k.startswith("net.")})
    training = Training(child.eval(), data, epochs=1, augment="zoph_le", channels_last=False, device="cpu")
    x = data.test_x[:5]
    with torch.no_grad():
        expected = child(training._input(x))
        export_run(run, formats=("python",))
        exported = import_file(run / "export" / "model.py").load()(x.float() / 255)
    assert torch.allclose(exported, expected, atol=1e-4)
    record = json.loads((run / "export" / "export.json").read_text())
    assert "whitens" in record["meta"]["input"]["normalize"]["x"]


def test_dry_run_of_a_random_v3_network(capsys):
    """``torchnas train --preset nas-cnn-pool --arch random --dry-run``: 39 conv layers, 2 pools and
    the parameter count; with 40 extra filters a larger count, and the one before it."""
    import re
    from torchnas.cli import main
    assert main(["train", "--preset", "nas-cnn-pool", "--arch", "random", "--dry-run"]) == 0
    plain = capsys.readouterr().out
    assert "conv layers: 39, pooling layers: 2" in plain
    assert main(["train", "--preset", "nas-cnn-pool", "--arch", "random", "--dry-run",
                 "--set", "final_net.extra_filters=40"]) == 0
    wide = capsys.readouterr().out
    count = (lambda text, label: int(re.search(label + r" ([\d,]+)", text).group(1).replace(",", "")))
    assert plain.splitlines()[0] == wide.splitlines()[0]             # the same drawn architecture
    assert count(wide, "parameters:") > count(plain, "parameters:")
    assert count(wide, "per layer:") == count(plain, "parameters:")


def test_a_resumed_retraining_reads_its_stored_whitening(tmp_path):
    """``whitening.pt`` read back (not fitted again) when a retraining resumes; a damaged one, or
    one for images of another size, is refused by name."""
    from types import SimpleNamespace
    from torchnas.data.images import load_image_data
    from torchnas.runs import RunDir, RunError
    from torchnas.tasks.images import _keep_whitening
    from torchnas.training import Training
    data = load_image_data("digits")
    space = build_space(load_preset("nas-cnn-tiny"))
    child = space.child(space.random(random.Random(0)), 1, 10)
    run = SimpleNamespace(path=tmp_path)
    fresh = Training(child, data, epochs=1, augment="zoph_le", device="cpu")
    _keep_whitening(run, fresh)                               # the start: written
    stored = torch.load(tmp_path / RunDir.WHITENING, weights_only=True)
    assert torch.equal(stored["matrix"], data.zca().matrix)
    torch.save({"mean": stored["mean"] + 1, "matrix": stored["matrix"] * 2}, tmp_path / RunDir.WHITENING)
    resumed = Training(child, data, epochs=1, augment="zoph_le", device="cpu")
    _keep_whitening(run, resumed)                             # a resume: read back as stored
    assert torch.equal(resumed.whitening.matrix, stored["matrix"] * 2)
    assert torch.equal(resumed.whitening.mean, stored["mean"] + 1)
    for bad, message in [(b"not a tensor file", "is not a whitening this run wrote"),
                         ({"mean": torch.zeros(3), "matrix": torch.zeros(3, 3)}, "another size")]:
        path = tmp_path / RunDir.WHITENING
        path.write_bytes(bad) if isinstance(bad, bytes) else torch.save(bad, path)
        with pytest.raises(RunError, match=message):
            _keep_whitening(run, Training(child, data, epochs=1, augment="zoph_le", device="cpu"))


def test_zoph_le_refuses_images_too_large_to_whiten():
    from torchnas.data.images import ImageData
    x = torch.zeros(2, 3, 96, 96, dtype=torch.uint8)
    y = torch.zeros(2, dtype=torch.long)
    data = ImageData("big", x, y, x, y, x, y, 2, ["a", "b"], torch.zeros(3), torch.ones(3))
    with pytest.raises(ValueError, match=r"27,648 values here .* \(data.image_size: 64 or less\)"):
        data.zca()


def test_augment_arguments_are_checked_up_front(capsys):
    from torchnas.cli import main
    assert main(["train", "--preset", "nas-cnn-tiny", "--arch", "random", "--dry-run",
                 "--set", "train.augment={pda: 3}"]) == 2
    assert "train.augment" in capsys.readouterr().err


def test_a_retraining_checkpointed_before_blocks_resumes():
    """A checkpoint of the layout before units had blocks: model keys ``convs.i``/``bns.i`` and the
    optimizer's momentum kept in that layout's parameter order (all convs, then all BNs): it
    resumes with each momentum on its own parameter."""
    from torchnas.data.images import load_image_data
    from torchnas.spaces.nas_cnn import current_key
    from torchnas.training import Training
    data = load_image_data("digits")
    space = NASCNNSpace(layers=3, num_filters=(4, 8))
    arch = space.parse("nas-cnn:3,3,4,-,1,3,8,0,3,1,4,0+1")
    make = (lambda: Training(space.child(arch, 1, 10), data, epochs=2, batch_size=64, device="cpu",
                             channels_last=False, max_batches=2))
    t = make()
    t.train_epoch()
    now = t.state_dict()
    # the old layout's state dict, in its order: every conv, then every BN, then the classifier
    old_keys = [f"convs.{i}.weight" for i in range(3)] + [
        f"bns.{i}.{b}" for i in range(3) for b in ("weight", "bias", "running_mean", "running_var",
                                                   "num_batches_tracked")] + ["classifier.weight", "classifier.bias"]
    assert sorted(map(current_key, old_keys)) == sorted(now["model"])
    names = [n for n, _ in t.model.named_parameters()]
    old_order = [current_key(k) for k in old_keys if current_key(k) in names]
    assert old_order != names and sorted(old_order) == sorted(names)
    old = dict(now)
    old["model"] = {k: now["model"][current_key(k)] for k in old_keys}
    old["optimizer"] = {**now["optimizer"], "state": {i: now["optimizer"]["state"][names.index(n)]
                                                      for i, n in enumerate(old_order)}}
    resumed = make()
    resumed.load_state_dict(old)
    momentum = resumed.opt.state_dict()["state"]
    for i, p in enumerate(names):
        assert torch.equal(momentum[i]["momentum_buffer"], now["optimizer"]["state"][i]["momentum_buffer"]), p
    resumed.train_epoch()                                      # the step runs (it crashed before)
