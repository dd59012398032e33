"""Building blocks of the ENAS convolutional spaces (Pham et al. 2018, §2.3-2.4).

Facts from the authors' TensorFlow code (melodyguan/enas, ``src/cifar10/micro_child.py`` @00787a5 and
``src/cifar10/image_ops.py`` @026817d), each repeated where it is used:

* padding is TensorFlow's ``"SAME"``: output size ``ceil(in / stride)``, and when the total
  padding is odd the extra row/column goes at the bottom/right (:func:`same_padding`). For
  stride 1 and an odd kernel this is PyTorch's symmetric ``k // 2``;
* average pooling with ``"SAME"`` averages only the entries inside the input (the padding is
  not counted); max pooling never picks the padding;
* ``image_ops.batch_norm``: ``decay=0.9`` (PyTorch ``momentum=0.1``), ``epsilon=1e-3``;
* convolutions have no bias; the weights use ``create_weight``, whose initializer is He normal
  in the copies of ``src/common_ops.py`` that exist (the authors' own file is not in the
  index we could read, so :func:`init_weights` is our reading, not a checked fact).

All modules take input/output channels, kernel size and stride so that the ENAS macro space can
reuse them. Nothing here calls ``.view``: the code works on channels_last tensors.
"""
from __future__ import annotations

import math
import re

import torch
import torch.nn.functional as F
from torch import nn

BN_EPS = 1e-3        # image_ops.py batch_norm(epsilon=1e-3)
BN_MOMENTUM = 0.1    # image_ops.py batch_norm(decay=0.9): running = 0.9 running + 0.1 batch


def batch_norm(channels: int, eps: float = BN_EPS) -> nn.BatchNorm2d:
    """BatchNorm2d with the authors' epsilon and decay (``image_ops.py``)."""
    return nn.BatchNorm2d(channels, eps=eps, momentum=BN_MOMENTUM)


def use_batch_stats(module: nn.Module) -> nn.Module:
    """Make every BatchNorm in ``module`` normalise with the current batch's statistics, in
    train and eval mode alike, and keep no running averages. The ENAS search network does
    this (``micro_child.py`` ``_model``: ``if self.fixed_arc is None: is_training = True``;
    ``_enas_conv`` calls ``fused_batch_norm(..., is_training=True)``)."""
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.track_running_stats = False
            m.running_mean = m.running_var = m.num_batches_tracked = None
    return module


def init_weights(module: nn.Module) -> nn.Module:
    """He-normal (fan-in) init of conv and linear weights; BN scale 1, offset 0
    (``image_ops.py``). See the module docstring for how sure we are of He normal."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return module


# -- TensorFlow "SAME" padding ---------------------------------------------------------------
def same_padding(size: int, kernel_size: int, stride: int) -> tuple[int, int]:
    """(before, after) padding of TF ``"SAME"`` along one axis of length ``size``."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel_size - size, 0)
    return total // 2, total - total // 2


def _pads(x: torch.Tensor, kernel_size: int, stride: int):
    """TF "SAME" pads for H and W: ``(sym_h, sym_w)`` when symmetric (usable as a PyTorch
    ``padding`` argument), else ``None`` and the F.pad tuple."""
    top, bottom = same_padding(x.shape[-2], kernel_size, stride)
    left, right = same_padding(x.shape[-1], kernel_size, stride)
    if top == bottom and left == right:
        return (top, left), None
    return None, (left, right, top, bottom)


class Conv2dSame(nn.Conv2d):
    """``nn.Conv2d`` (square kernel) with TF ``"SAME"`` padding for any input size and stride."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 groups: int = 1, bias: bool = False):
        super().__init__(in_channels, out_channels, kernel_size, stride, 0, groups=groups, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        sym, asym = _pads(x, self.kernel_size[0], self.stride[0])
        if asym is not None:
            x, sym = F.pad(x, asym), (0, 0)
        return F.conv2d(x, self.weight, self.bias, self.stride, sym, 1, self.groups)


def pool2d_same(x: torch.Tensor, kind: str, kernel_size: int = 3, stride: int = 1) -> torch.Tensor:
    """``tf.layers.{average,max}_pooling2d(..., "SAME")``: the average excludes the padding."""
    sym, asym = _pads(x, kernel_size, stride)
    if kind == "max":
        if asym is not None:
            x, sym = F.pad(x, asym, value=-math.inf), (0, 0)
        return F.max_pool2d(x, kernel_size, stride, sym)
    if kind != "avg":
        raise ValueError(f"pool kind must be 'avg' or 'max', not {kind!r}")
    if asym is None:
        return F.avg_pool2d(x, kernel_size, stride, sym, count_include_pad=False)
    ones = x.new_ones((1, 1) + tuple(x.shape[-2:]))
    total = F.avg_pool2d(F.pad(x, asym), kernel_size, stride)
    count = F.avg_pool2d(F.pad(ones, asym), kernel_size, stride)
    return total / count


# -- operations ------------------------------------------------------------------------------
class ReLUConvBN(nn.Sequential):
    """ReLU → conv k×k (stride, "SAME", no bias) → BN. The authors' 1×1 calibrations
    (``micro_child.py`` ``_maybe_calibrate_size``, ``layer_base``, the pool and identity
    channel fixes) are this block with k=1."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 1, stride: int = 1,
                 eps: float = BN_EPS):
        super().__init__(nn.ReLU(), Conv2dSame(in_channels, out_channels, kernel_size, stride),
                         batch_norm(out_channels, eps))


class SepConv(nn.Module):
    """ENAS separable convolution: ``repeats`` × (ReLU → depthwise k×k → pointwise 1×1 → BN).

    ``micro_child.py``: ``_fixed_conv(..., stack_convs=2)`` and ``_enas_conv(...,
    stack_conv=2)`` both stack **two** such blocks; the stride applies to the first depthwise
    conv only; the first pointwise conv maps ``in_channels`` to ``out_channels``. The
    search network's blocks use ``fused_batch_norm(epsilon=1e-5)`` (``_enas_conv``), the
    final network's ``batch_norm`` (epsilon 1e-3, ``_fixed_conv``): pass ``eps``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 repeats: int = 2, eps: float = BN_EPS):
        super().__init__()
        blocks, c = [], in_channels
        for r in range(repeats):
            blocks.append(nn.Sequential(
                nn.ReLU(),
                Conv2dSame(c, c, kernel_size, stride if r == 0 else 1, groups=c),
                nn.Conv2d(c, out_channels, 1, bias=False),
                batch_norm(out_channels, eps)))
            c = out_channels
        self.blocks = nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(x)


class Pool(nn.Module):
    """3×3 (``kernel_size``) average or max pooling, "SAME", then ReLU-conv1×1-BN when the
    channel count changes (``micro_child.py`` ``_fixed_layer`` and ``_enas_cell``: the 1×1
    conv is applied only ``if inp_c != out_filters``)."""

    def __init__(self, kind: str, in_channels: int, out_channels: int, stride: int = 1,
                 kernel_size: int = 3, eps: float = BN_EPS):
        super().__init__()
        if kind not in ("avg", "max"):
            raise ValueError(f"pool kind must be 'avg' or 'max', not {kind!r}")
        self.kind, self.kernel_size, self.stride = kind, kernel_size, stride
        self.proj = ReLUConvBN(in_channels, out_channels, 1, eps=eps) if in_channels != out_channels else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = pool2d_same(x, self.kind, self.kernel_size, self.stride)
        return x if self.proj is None else self.proj(x)


class FactorizedReduce(nn.Module):
    """Halve the resolution without dropping positions (``micro_child.py``
    ``_factorized_reduction``): two 1×1 convs (stride 2, ``out_channels // 2`` each), one on
    ``x``, one on ``x`` shifted by one row and column (zero-padded at the bottom/right),
    concatenated, then BN. With ``stride=1`` it is a 1×1 conv and BN. ``relu=True`` applies a
    ReLU first (the authors do so when calibrating a cell input, not elsewhere)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 2, relu: bool = False,
                 eps: float = BN_EPS):
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"factorized reduction supports stride 1 or 2, not {stride}")
        if stride == 2 and out_channels % 2:
            raise ValueError(f"factorized reduction needs an even number of output channels, got {out_channels}")
        self.relu, self.stride = relu, stride
        if stride == 1:
            self.conv = nn.Conv2d(in_channels, out_channels, 1, bias=False)
        else:
            self.conv_1 = nn.Conv2d(in_channels, out_channels // 2, 1, stride=2, bias=False)
            self.conv_2 = nn.Conv2d(in_channels, out_channels // 2, 1, stride=2, bias=False)
        self.bn = batch_norm(out_channels, eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.relu:
            x = F.relu(x)
        if self.stride == 1:
            return self.bn(self.conv(x))
        shifted = F.pad(x[:, :, 1:, 1:], (0, 1, 0, 1))
        return self.bn(torch.cat([self.conv_1(x), self.conv_2(shifted)], dim=1))


class Identity(nn.Module):
    """Identity; with stride 2 a :class:`FactorizedReduce`, and a ReLU-conv1×1-BN when the
    channel count changes (``micro_child.py`` ``_fixed_layer``, op 4)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, eps: float = BN_EPS):
        super().__init__()
        if stride > 1:
            self.op = FactorizedReduce(in_channels, out_channels, stride, eps=eps)
        elif in_channels != out_channels:
            self.op = ReLUConvBN(in_channels, out_channels, 1, eps=eps)
        else:
            self.op = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)


def drop_path(x: torch.Tensor, keep_prob: float, training: bool = True) -> torch.Tensor:
    """Zero whole examples with probability ``1 - keep_prob`` and scale the kept ones by
    ``1 / keep_prob`` (``image_ops.py`` ``drop_path``: mask = floor(keep_prob + U[0,1)) per
    example). A no-op outside training or when ``keep_prob >= 1``."""
    if not training or keep_prob >= 1.0:
        return x
    mask = torch.floor(keep_prob + torch.rand(x.shape[0], 1, 1, 1, device=x.device, dtype=x.dtype))
    return x / keep_prob * mask


class AuxHead(nn.Module):
    """Auxiliary classifier (``micro_child.py`` ``_model``, scope ``aux_head``): ReLU →
    avg pool 5×5 stride 3 "VALID" → conv1×1 to 128 → BN → ReLU → conv with a kernel as large
    as the pooled map ("SAME") to 768 → BN → ReLU → global average pool → linear (no bias).
    ``input_size`` is the spatial size of the head's input (it fixes the second kernel). The
    0.4 loss weight belongs to the trainer (``_build_train``: ``loss + 0.4 * aux_loss``).
    The authors' linear layer has 10 outputs (CIFAR-10); here ``num_classes``."""

    def __init__(self, in_channels: int, num_classes: int, input_size: int):
        super().__init__()
        pooled = (input_size - 5) // 3 + 1
        if pooled < 1:
            raise ValueError(f"the auxiliary head needs an input of at least 5x5, got {input_size}x{input_size}")
        self.features = nn.Sequential(
            nn.ReLU(), nn.AvgPool2d(5, 3),
            nn.Conv2d(in_channels, 128, 1, bias=False), batch_norm(128), nn.ReLU(),
            Conv2dSame(128, 768, pooled), batch_norm(768), nn.ReLU())
        self.classifier = nn.Linear(768, num_classes, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).mean((2, 3)))


__all__ = ["BN_EPS", "BN_MOMENTUM", "batch_norm", "use_batch_stats", "init_weights", "same_padding",
           "Conv2dSame", "pool2d_same", "ReLUConvBN", "SepConv", "Pool", "FactorizedReduce", "Identity",
           "drop_path", "AuxHead"]


_OP_NAME = re.compile(r"^(conv|sep_conv|avg_pool|max_pool)_(\d+)x(\d+)$")


def parse_op(name: str, space: str, kinds: tuple[str, ...]) -> tuple[str, int]:
    """``"sep_conv_3x3"`` -> ``("sep_conv", 3)`` (``"identity"`` -> ``("identity", 1)``) if its kind
    is one of ``kinds`` and the kernel is square and odd; else an error naming the choices."""
    m = _OP_NAME.match(name)
    kind, k = ("identity", 1) if name == "identity" else ((m.group(1), int(m.group(2))) if m else (None, 0))
    if kind not in kinds or (m and (m.group(2) != m.group(3) or k % 2 == 0)):
        allowed = ", ".join(kd if kd == "identity" else f"{kd}_KxK" for kd in kinds)
        raise ValueError(f"{space}: unknown op {name!r}; use {allowed} with an odd K")
    return kind, k


def zca_whiten(x: torch.Tensor, mean: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    """``W (x - mean)`` on each flattened image of ``x`` (images in [0, 1]; ``W`` symmetric, so
    ``(x - mean) @ W``), in ``mean``'s dtype and ``x``'s shape (Zoph & Le §4.1's whitening)."""
    return ((x.flatten(1).to(mean.dtype) - mean) @ matrix).unflatten(1, x.shape[1:])   # any batch (traced too)


class Whitened(nn.Module):
    """A network behind ZCA whitening (``augment: zoph_le``, Zoph & Le §4.1), for export and for a
    retraining's ``model.pt``: ``forward(x)`` takes images in [0, 1] (``x_uint8 / 255``) and runs
    ``net(W (x - mean))`` on the flattened image, as the training pipeline fed the network."""

    def __init__(self, net: nn.Module, mean: torch.Tensor, matrix: torch.Tensor):
        super().__init__()
        self.net = net
        self.register_buffer("mean", mean.detach().clone())
        self.register_buffer("matrix", matrix.detach().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(zca_whiten(x, self.mean, self.matrix))
