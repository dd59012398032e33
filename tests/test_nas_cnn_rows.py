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


def _conv_inputs(model, x):
    """Each block convolution's (conv → BN → ReLU) input and output, and each unit's input, from
    one forward pass in eval mode."""
    seen, unit_in = [], []
    hooks = [c.register_forward_hook(lambda m, i, o: seen.append((i[0], o))) for u in model.units for c in u.convs]
    hooks += [u.register_forward_hook(lambda m, i, o: unit_in.append(i[0])) for u in model.units]
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
        seen, unit_in = _conv_inputs(model, torch.randn(2, 3, 16, 16))
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
            readers = [v for v, l in enumerate(layers) if l["inputs"] == [u]]
            for v in readers:                   # a unit reading only u gets u's output as is
                assert torch.equal(unit_in[v], block)
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
    space = NASCNNSpace(layers=3, num_filters=(4,), pool_after=(0,), pooled_skips="pool")
    arch = space.parse("nas-cnn:3,3,4,-,3,3,4,0,3,3,4,0+1")
    _, unit_in = _conv_inputs(space.child(arch, 3, 10), torch.randn(1, 3, 8, 8))
    assert unit_in[2].shape == (1, 8, 4, 4)                 # unit 0 pooled, unit 1 after the pool


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
    """``augment: zoph_le``: the retraining stores its whitening and resumes with it; model.pt and
    the exported network take x_uint8 / 255 and whiten it as the training pipeline did."""
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
