"""The Zoph & Le (2017) convolutional search space and its child networks.

Decisions, per layer i (§3.1, §3.3, §4.1): filter height and width in {1,3,5,7}, optionally
a stride in {1,2,3} (``strides``; one square stride, or with ``stride_shape: separate`` a stride
height and a stride width, as the paper's Fig. 2 draws them), a number of filters in
{24,36,48,64}, then an anchor point whose sigmoids
choose which earlier layers feed layer i (an :class:`AnchorSet` over layers 0..i-1). The
order inside a layer, and registering the anchor at the skip step, follow the ENAS macro
controller (``general_controller.py``), the code closest to the paper that exists.

A child network follows the paper's rules (§3.3):

* each layer is conv (FH × FW, NF filters, stride, 'same' padding) → batch norm → ReLU;
* a layer's inputs are concatenated along depth; inputs of different spatial size are
  zero-padded (bottom and right) to the largest;
* a layer with no input takes the image;
* every layer that no later layer uses is concatenated into the classifier's input, which
  is global average pooling and a linear layer.

Fixed max-pooling (the paper's "v3 max pooling" variant) is ``pool_after``: a 2×2 max pool
(stride 2) is applied to the output of each listed layer. The space can be deepened
(:meth:`NASCNNSpace.resized`) for Zoph & Le's progressive depth; an architecture string's
length tells its depth.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..registry import register
from .base import AnchorSet, Architecture, ArchitectureError, Choice, SearchSpace, Step
from .graph import Graph, Node, stack_graph
from ..settings import Count

PAPER_SIZES = (1, 3, 5, 7)
PAPER_FILTERS = (24, 36, 48, 64)
PAPER_STRIDES = (1, 2, 3)


@register("space")
class NASCNNSpace(SearchSpace):
    name = "nas-cnn"

    def __init__(self, layers: Count = 6, filter_sizes=PAPER_SIZES, num_filters=PAPER_FILTERS,
                 strides=None, pool_after=(), stride_shape: str = "square"):
        if layers < 1:
            raise ValueError(f"nas-cnn needs layers >= 1, got {layers}")
        for k in filter_sizes:
            if int(k) < 1 or int(k) % 2 == 0:
                raise ValueError(f"nas-cnn filter sizes must be odd and >= 1 ('same' padding), got {k}")
        if any(int(n) < 1 for n in num_filters):
            raise ValueError(f"nas-cnn numbers of filters must be >= 1, got {list(num_filters)}")
        if strides is not None and any(int(s) < 1 for s in strides):
            raise ValueError(f"nas-cnn strides must be >= 1, got {list(strides)}")
        if stride_shape not in ("square", "separate"):
            raise ValueError(f"nas-cnn stride_shape must be 'square' (one stride decision) or 'separate' "
                             f"(stride height and width, Zoph & Le Fig. 2), not {stride_shape!r}")
        bad = [p for p in pool_after if not 0 <= p < layers - 1]
        if bad:
            raise ValueError(f"nas-cnn pool_after positions {bad} must name layers 0..{layers - 2}")
        self.layers = layers
        self.filter_sizes = tuple(int(k) for k in filter_sizes)
        self.num_filters = tuple(int(n) for n in num_filters)
        self.strides = None if strides is None else tuple(int(s) for s in strides)
        self.pool_after = tuple(sorted(set(int(p) for p in pool_after)))
        self.stride_shape = stride_shape
        decisions, steps = [], []
        for i in range(layers):
            fields = [("fh", self.filter_sizes), ("fw", self.filter_sizes)]
            if self.strides:
                fields += ([("stride", self.strides)] if stride_shape == "square"
                           else [("sh", self.strides), ("sw", self.strides)])
            fields.append(("nf", self.num_filters))
            for kind, options in fields:
                steps.append(Step(len(decisions)))
                decisions.append(Choice(f"layer{i}.{kind}", options, kind=kind))
            steps.append(Step(len(decisions), anchor="h"))
            decisions.append(AnchorSet(f"layer{i}.inputs", i))
        self.decisions = tuple(decisions)
        self._steps = tuple(steps)
        self.per_layer = len(decisions) // layers


    def graph(self, arch, **options) -> Graph:
        """Zoph & Le (2017, Fig. 7; §3.3): each layer's inputs are the layers its anchor point
        picked (none: the image); the layers no layer uses feed GAP + softmax."""
        layers = self.layers_of(arch)
        labels = [f"layer {i}: {l['fh']}x{l['fw']}, {l['nf']} filters, stride {_stride_text(l['stride'])}"
                  + ("\n+ max pool 2x2" if l["pool"] else "") for i, l in enumerate(layers)]
        used = {j for l in layers for j in l["inputs"]}
        return stack_graph(f"Zoph & Le CNN ({len(layers)} layers)", [Node("image", "image", "input")], labels,
                           [[f"layer{j}" for j in l["inputs"]] or ["image"] for l in layers], [[] for _ in layers],
                           Node("output", "GAP + softmax", "output"),
                           [f"layer{i}" for i in range(len(layers)) if i not in used])

    def config(self) -> dict:
        return {"name": self.name, "layers": self.layers, "filter_sizes": list(self.filter_sizes),
                "num_filters": list(self.num_filters),
                "strides": None if self.strides is None else list(self.strides),
                "pool_after": list(self.pool_after), "stride_shape": self.stride_shape}

    def resized(self, layers: int) -> "NASCNNSpace":
        cfg = self.config()
        cfg.pop("name")
        cfg["layers"] = layers
        cfg["pool_after"] = [p for p in self.pool_after if p < layers - 1]
        return NASCNNSpace(**cfg)

    # An architecture's depth is its length: strings and values of any depth are accepted.
    def _for_length(self, n: int) -> "NASCNNSpace":
        if n == len(self.decisions):
            return self
        if n < self.per_layer or n % self.per_layer:
            raise ArchitectureError(
                f"space 'nas-cnn' takes {self.per_layer} values per layer "
                f"({', '.join(d.name.split('.')[1] for d in self.decisions[:self.per_layer])}); got {n} values")
        return self.resized(n // self.per_layer)

    def make(self, values):
        values = list(values)
        space = self._for_length(len(values))
        return SearchSpace.make(space, values)

    def parse(self, text: str) -> Architecture:
        name, _, body = text.strip().partition(":")
        if name.strip() != self.name:
            return SearchSpace.parse(self, text)          # its error names the string's space
        space = self._for_length(len(body.split(",")) if body else 0)
        return SearchSpace.parse(space, text)

    def check(self, arch: Architecture) -> Architecture:
        return SearchSpace.check(self._for_length(len(arch.values)), arch)

    def format(self, arch: Architecture) -> str:
        return SearchSpace.format(self._for_length(len(arch.values)), arch)

    # -- the child network -------------------------------------------------------------------
    def layers_of(self, arch: Architecture) -> list[dict]:
        """Per layer: fh, fw, stride (height, width), nf and inputs (the layers feeding it; empty =
        image)."""
        space = self._for_length(len(arch.values))
        space.check(arch)
        out = []
        for i in range(space.layers):
            v = dict(zip((d.name.split(".")[1] for d in space.decisions[i * space.per_layer:(i + 1) * space.per_layer]),
                         arch.values[i * space.per_layer:(i + 1) * space.per_layer]))
            out.append({"fh": space.filter_sizes[v["fh"]], "fw": space.filter_sizes[v["fw"]],
                        "stride": _stride(space, v),
                        "nf": space.num_filters[v["nf"]], "inputs": list(v["inputs"]),
                        "pool": i in space.pool_after})
        return out

    def child(self, arch: Architecture, in_channels: int, num_classes: int) -> "NASCNNChild":
        return NASCNNChild(self.layers_of(arch), in_channels, num_classes)


def _stride(space: NASCNNSpace, v: dict) -> tuple[int, int]:
    """A layer's (height, width) stride from its decisions (1 when strides are not searched)."""
    if not space.strides:
        return (1, 1)
    if "stride" in v:
        return (space.strides[v["stride"]],) * 2
    return space.strides[v["sh"]], space.strides[v["sw"]]


def _stride_text(stride: tuple[int, int]) -> str:
    return str(stride[0]) if stride[0] == stride[1] else f"{stride[0]}x{stride[1]}"


def pad_to(x: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Zero-pad a (B, C, H', W') map at the bottom and right to (B, C, h, w)."""
    dh, dw = h - x.shape[2], w - x.shape[3]
    return x if dh == dw == 0 else F.pad(x, (0, dw, 0, dh))


def concat_padded(xs: list[torch.Tensor]) -> torch.Tensor:
    if len(xs) == 1:
        return xs[0]
    h = max(x.shape[2] for x in xs)
    w = max(x.shape[3] for x in xs)
    return torch.cat([pad_to(x, h, w) for x in xs], dim=1)


class NASCNNChild(nn.Module):
    """A standalone child network of the Zoph & Le space (rules in the module docstring)."""

    def __init__(self, layers: list[dict], in_channels: int, num_classes: int):
        super().__init__()
        self.spec = layers
        used = {j for layer in layers for j in layer["inputs"]}
        self.loose_ends = [i for i in range(len(layers)) if i not in used]
        self.convs = nn.ModuleList()
        self.bns = nn.ModuleList()
        for layer in layers:
            cin = sum(layers[j]["nf"] for j in layer["inputs"]) if layer["inputs"] else in_channels
            self.convs.append(nn.Conv2d(cin, layer["nf"], (layer["fh"], layer["fw"]), stride=layer["stride"],
                                        padding=(layer["fh"] // 2, layer["fw"] // 2), bias=False))
            self.bns.append(nn.BatchNorm2d(layer["nf"]))
        self.classifier = nn.Linear(sum(layers[i]["nf"] for i in self.loose_ends), num_classes)

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        outs: list[torch.Tensor] = []
        for layer, conv, bn in zip(self.spec, self.convs, self.bns):
            inp = concat_padded([outs[j] for j in layer["inputs"]]) if layer["inputs"] else x
            y = F.relu(bn(conv(inp)))
            if layer["pool"]:
                y = F.max_pool2d(y, 2, 2, ceil_mode=True)
            outs.append(y)
        return outs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = self.features(x)
        h = concat_padded([outs[i] for i in self.loose_ends])
        return self.classifier(h.mean((2, 3)))
