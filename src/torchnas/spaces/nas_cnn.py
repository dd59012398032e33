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

The paper's "v3 max pooling" row (§4.1: "we have our model predict 13 layers where each layer
prediction is a fully connected block of 3 layers", filters from [6, 12, 24, 36], "2 pooling
layers at layer 13 and layer 24") is three settings, read as docs/reference-settings.md says:

* ``block_layers``: each predicted layer (a *unit*) is a block of that many convolutions with its
  height, width and filters, densely connected: block convolution k reads the unit's input and
  the outputs of convolutions 0..k-1, concatenated; the unit's output is the concatenation of its
  convolutions (``block_output: concat``) or its last one (``last``);
* ``pool_after``: a 2×2 max pool (stride 2) on the output of each listed unit;
* ``pooled_skips``: inputs of different sizes are zero-padded to the largest (``pad``, the rule
  above) or the larger ones max-pooled down to the smallest (``pool``: a skip crosses the same
  pooling layers as the main path).

The space can be deepened (:meth:`NASCNNSpace.resized`) for Zoph & Le's progressive depth; an
architecture string's length tells its depth.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..registry import register
from .base import AnchorSet, Architecture, ArchitectureError, Choice, SearchSpace, Step
from .graph import Graph, Node, stack_graph
from ..settings import Count, NonNegativeInt

PAPER_SIZES = (1, 3, 5, 7)
PAPER_FILTERS = (24, 36, 48, 64)
PAPER_STRIDES = (1, 2, 3)
BLOCK_OUTPUTS = ("concat", "last")
POOLED_SKIPS = ("pad", "pool")


@register("space")
class NASCNNSpace(SearchSpace):
    name = "nas-cnn"

    def __init__(self, layers: Count = 6, filter_sizes=PAPER_SIZES, num_filters=PAPER_FILTERS,
                 strides=None, pool_after=(), stride_shape: str = "square", block_layers: Count = 1,
                 block_output: str = "concat", pooled_skips: str = "pad"):
        if layers < 1 or block_layers < 1:
            raise ValueError(f"nas-cnn needs layers >= 1 and block_layers >= 1, got {layers} and {block_layers}")
        if block_output not in BLOCK_OUTPUTS or pooled_skips not in POOLED_SKIPS:
            raise ValueError(f"nas-cnn block_output must be one of {', '.join(BLOCK_OUTPUTS)} and pooled_skips one "
                             f"of {', '.join(POOLED_SKIPS)}; got {block_output!r} and {pooled_skips!r}")
        if strides and (block_layers > 1 or pooled_skips == "pool"):
            raise ValueError("nas-cnn: strides are searched with block_layers 1 and pooled_skips 'pad' only (the "
                             "paper's v2 row); its blocks and pooling (v3) predict no strides")
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
        self.block_layers, self.block_output, self.pooled_skips = int(block_layers), block_output, pooled_skips
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
        block = (lambda l: "" if l["block"] == 1 else f"{l['block']} x ")
        labels = [f"layer {i}: {block(l)}{l['fh']}x{l['fw']}, {l['nf']} filters, stride {_stride_text(l['stride'])}"
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
                "pool_after": list(self.pool_after), "stride_shape": self.stride_shape,
                "block_layers": self.block_layers, "block_output": self.block_output,
                "pooled_skips": self.pooled_skips}

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
        """Per predicted layer: fh, fw, stride (height, width), nf, inputs (the layers feeding it;
        empty = image), pool (a max pool after it), block (its convolutions) and block_output."""
        space = self._for_length(len(arch.values))
        space.check(arch)
        out = []
        for i in range(space.layers):
            v = dict(zip((d.name.split(".")[1] for d in space.decisions[i * space.per_layer:(i + 1) * space.per_layer]),
                         arch.values[i * space.per_layer:(i + 1) * space.per_layer]))
            out.append({"fh": space.filter_sizes[v["fh"]], "fw": space.filter_sizes[v["fw"]],
                        "stride": _stride(space, v),
                        "nf": space.num_filters[v["nf"]], "inputs": list(v["inputs"]),
                        "pool": i in space.pool_after, "block": space.block_layers,
                        "block_output": space.block_output})
        return out

    def layer_counts(self, arch: Architecture) -> dict[str, int]:
        """Convolutions and the ``pool_after`` pools (a skip pooled down with ``pooled_skips:
        pool`` passes through those same pooling layers: not counted again)."""
        layers = self.layers_of(arch)
        return {"conv layers": sum(l["block"] for l in layers), "pooling layers": sum(l["pool"] for l in layers)}

    def network_notes(self, arch: Architecture, net: dict, params_with) -> list[str]:
        """The count before Zoph & Le's "40 more filters" (§4.1), when ``extra_filters`` adds some."""
        if not net.get("extra_filters"):
            return []
        return [f"parameters without the {net['extra_filters']} extra filters per layer: "
                f"{params_with(extra_filters=0):,}"]

    def flops(self, arch: Architecture, in_channels: int = 3, image: int = 32, num_classes: int = 10) -> int:
        """Forward FLOPs per image of the child, as :func:`~torchnas.nn.flops.count_flops` counts
        them (2 × the multiply-adds of every convolution and of the classifier), from the rules
        above without building the network (the cluster simulator's durations, issue 29)."""
        layers, shapes, total = self.layers_of(arch), [], 0
        for layer in layers:
            nf, (sh, sw) = layer["nf"], layer["stride"]
            c, h, w = (_concat_shape([shapes[j] for j in layer["inputs"]], self.pooled_skips) if layer["inputs"]
                       else (in_channels, image, image))
            h, w = (h - 1) // sh + 1, (w - 1) // sw + 1          # odd kernels, 'same' padding
            total += sum(2 * layer["fh"] * layer["fw"] * (c + j * nf) * nf * h * w for j in range(layer["block"]))
            concat = layer["block_output"] == "concat" and layer["block"] > 1
            if layer["pool"]:
                h, w = -(-h // 2), -(-w // 2)
            shapes.append((nf * (layer["block"] if concat else 1), h, w))
        used = {j for layer in layers for j in layer["inputs"]}
        return total + 2 * num_classes * sum(shapes[i][0] for i in range(len(layers)) if i not in used)

    def child(self, arch: Architecture, in_channels: int, num_classes: int,
              extra_filters: NonNegativeInt = 0) -> "NASCNNChild":
        """The child network; ``extra_filters`` adds that many filters to every layer (Zoph & Le
        §4.1, Table 1's last row: "adding 40 more filters to each layer")."""
        layers = [{**l, "nf": l["nf"] + int(extra_filters)} for l in self.layers_of(arch)]
        return NASCNNChild(layers, in_channels, num_classes, self.pooled_skips)


def _stride(space: NASCNNSpace, v: dict) -> tuple[int, int]:
    """A layer's (height, width) stride from its decisions (1 when strides are not searched)."""
    if not space.strides:
        return (1, 1)
    if "stride" in v:
        return (space.strides[v["stride"]],) * 2
    return space.strides[v["sh"]], space.strides[v["sw"]]


def _stride_text(stride: tuple[int, int]) -> str:
    return str(stride[0]) if stride[0] == stride[1] else f"{stride[0]}x{stride[1]}"


def _concat_shape(shapes: list[tuple[int, int, int]], pooled_skips: str) -> tuple[int, int, int]:
    """(channels, height, width) of :func:`concat_padded` on maps of these shapes."""
    c = sum(s[0] for s in shapes)
    if pooled_skips == "pool" and len(shapes) > 1:
        h = min(s[1] for s in shapes)
        w = min(s[2] for s in shapes if s[1] == h)
        return c, h, w
    return c, max(s[1] for s in shapes), max(s[2] for s in shapes)


def pad_to(x: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Zero-pad a (B, C, H', W') map at the bottom and right to (B, C, h, w)."""
    dh, dw = h - x.shape[2], w - x.shape[3]
    return x if dh == dw == 0 else F.pad(x, (0, dw, 0, dh))


def pool_to(x: torch.Tensor, h: int) -> torch.Tensor:
    """``x`` through 2×2 max pools (stride 2, ``ceil_mode`` as the pooling layers) until its height
    is ``h``: a map from before ``n`` pooling layers, made the size of one after them."""
    while x.shape[2] > h:
        x = F.max_pool2d(x, 2, 2, ceil_mode=True)
    return x


def concat_padded(xs: list[torch.Tensor], pooled_skips: str = "pad") -> torch.Tensor:
    """Inputs concatenated along depth, of one size: the smaller zero-padded to the largest (§3.3)
    or, with ``pooled_skips='pool'``, the larger max-pooled down to the smallest."""
    if len(xs) == 1:
        return xs[0]
    if pooled_skips == "pool":
        h = min(x.shape[2] for x in xs)
        return torch.cat([pool_to(x, h) for x in xs], dim=1)
    h = max(x.shape[2] for x in xs)
    w = max(x.shape[3] for x in xs)
    return torch.cat([pad_to(x, h, w) for x in xs], dim=1)


class ConvBNReLU(nn.Sequential):
    def __init__(self, cin: int, cout: int, kernel: tuple[int, int], stride=(1, 1)):
        super().__init__(nn.Conv2d(cin, cout, kernel, stride=stride, padding=(kernel[0] // 2, kernel[1] // 2),
                                   bias=False), nn.BatchNorm2d(cout), nn.ReLU())


class Unit(nn.Module):
    """One predicted layer: ``block`` convolutions (conv → BN → ReLU) of its height, width, filters
    and stride, densely connected (convolution k reads the input and convolutions 0..k-1); the
    output concatenates them (``block_output='concat'``) or is the last one's."""

    def __init__(self, layer: dict, cin: int):
        super().__init__()
        nf, k = layer["nf"], (layer["fh"], layer["fw"])
        self.convs = nn.ModuleList(ConvBNReLU(cin + j * nf, nf, k, layer["stride"]) for j in range(layer["block"]))
        self.concat = layer["block_output"] == "concat" and layer["block"] > 1
        self.pool = nn.MaxPool2d(2, 2, ceil_mode=True) if layer["pool"] else None
        self.out_channels = nf * (layer["block"] if self.concat else 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = []
        for j, conv in enumerate(self.convs):
            outs.append(conv(torch.cat([x, *outs], 1) if j else x))
        y = torch.cat(outs, 1) if self.concat else outs[-1]
        return y if self.pool is None else self.pool(y)


class NASCNNChild(nn.Module):
    """A standalone child network of the Zoph & Le space (rules in the module docstring)."""

    def __init__(self, layers: list[dict], in_channels: int, num_classes: int, pooled_skips: str = "pad"):
        super().__init__()
        self.spec, self.pooled_skips = layers, pooled_skips
        used = {j for layer in layers for j in layer["inputs"]}
        self.loose_ends = [i for i in range(len(layers)) if i not in used]
        self.units = nn.ModuleList()
        for layer in layers:
            cin = sum(self.units[j].out_channels for j in layer["inputs"]) if layer["inputs"] else in_channels
            self.units.append(Unit(layer, cin))
        self.classifier = nn.Linear(sum(self.units[i].out_channels for i in self.loose_ends), num_classes)
        self._register_load_state_dict_pre_hook(_renamed_keys)
        self.current_key = current_key          # training/state.py: an old checkpoint's optimizer state

    @property
    def convs(self) -> list[nn.Conv2d]:
        """Every convolution, in order (units, then each unit's block)."""
        return [m for m in self.modules() if isinstance(m, nn.Conv2d)]

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        outs: list[torch.Tensor] = []
        for layer, unit in zip(self.spec, self.units):
            outs.append(unit(concat_padded([outs[j] for j in layer["inputs"]], self.pooled_skips)
                             if layer["inputs"] else x))
        return outs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = self.features(x)
        h = concat_padded([outs[i] for i in self.loose_ends], self.pooled_skips)
        return self.classifier(h.mean((2, 3)))


def current_key(key: str, prefix: str = "") -> str:
    """The name today of a weight saved before units had blocks: ``convs.i.*`` and ``bns.i.*`` are
    block convolution 0's conv and BN (``units.i.convs.0.{0,1}.*``); other names are unchanged."""
    if not key.startswith((prefix + "convs.", prefix + "bns.")):
        return key
    kind, i, rest = key[len(prefix):].split(".", 2)
    return f"{prefix}units.{i}.convs.0.{0 if kind == 'convs' else 1}.{rest}"


def _renamed_keys(state, prefix, *args) -> None:
    """Weights saved before units had blocks load as block convolution 0 (``current_key``)."""
    for key in [k for k in state if current_key(k, prefix) != k]:
        state[current_key(key, prefix)] = state.pop(key)
