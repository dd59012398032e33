"""The ENAS macro (whole-network) search space (Pham et al. 2018, §2.3).

Facts from the authors' code, melodyguan/enas (file names under ``src/cifar10/`` unless they
start with ``scripts/``; ``general_child.py`` read at commit 00787a5, which matches a10850c;
``image_ops.py`` at 026817d; scripts at 00787a5):

Decisions and controller (``general_controller.py``, see ``docs/reference-settings.md`` A6):

* per layer ``i``: an op (one softmax head shared by all layers), then the skip connections,
  one sigmoid per earlier layer ``0..i-1``; the LSTM output of the skip step is layer ``i``'s
  anchor. Layer 0 has no skip decision (the authors' controller feeds ``g_emb`` next).
  Here: ``layer{i}.op`` (:class:`Choice`, kind ``"op"``) and ``layer{i}.skips``
  (:class:`AnchorSet` over ``i`` anchors; empty for layer 0), program
  ``Step(op), Step(skips, anchor="h")`` per layer;
* ops in the authors' branch order 0..5: conv 3×3, sep conv 3×3, conv 5×5, sep conv 5×5,
  avg pool 3×3, max pool 3×3 (``_enas_layer`` ``branch_0..branch_5``);
* the arc: per layer the op index then one 0/1 skip bit per earlier layer, space separated
  (``connect_controller`` splits on spaces; ``main.py`` prints ``1 + layer_id`` numbers per
  layer). :data:`PUBLISHED_ARC` is the 24-layer arc of ``scripts/cifar10_macro_final.sh``.

What a skip bit means (``_model``, ``_enas_layer``, ``_fixed_layer``): the network keeps
``prev_layers = [stem, out_0, ..., out_{i-1}]``; layer ``i`` reads ``prev_layers[-1]`` and skip
bit ``j`` adds ``prev_layers[j]``. So **bit j of layer i connects the input of layer j** -- the
stem output for ``j = 0``, the output of layer ``j - 1`` otherwise -- not layer ``j``'s
output: the direct predecessor (always the main input) is never a skip, the stem can be. We
follow this, so the published arc denotes the network the authors trained. (The controller's
anchor ``j`` is still layer ``j``'s LSTM output: the authors' controller and child disagree by
one position, and we keep both as they are.)

Networks (``general_child.py``):

* stem: conv 3×3 (``"SAME"``, no bias) to ``out_filters`` channels, then BN; no ReLU;
* reductions: ``pool_distance = num_layers // 3``, ``pool_layers = [pool_distance - 1,
  2 * pool_distance - 1]`` (:func:`reduction_layers`; for 12 layers 3 and 7, for 24 layers 7 and
  15; fewer than 3 layers: none). After a pool layer **every** entry of ``prev_layers`` (the stem
  output and all layer outputs so far) goes through a factorized reduction (two stride-2 1×1
  convs, one on the input shifted by a row and a column, concatenated, BN; no ReLU);
* classifier: global average pool of the last layer's output (no ReLU before it), dropout
  (``keep_prob``, training only), linear layer without bias.

The search network (``_enas_layer`` with ``whole_channels``, the macro search script's
``--controller_search_whole_channels``), :class:`ENASMacroShared`:

* every layer holds all ops (``branch_k`` variable scopes); the sampled one is used;
* conv op (``_conv_branch``): conv 1×1-BN-ReLU, then conv k×k-BN-ReLU; the separable op has
  one depthwise k×k conv and one pointwise conv (``tf.nn.separable_conv2d``, channel
  multiplier 1) before that last BN and ReLU;
* pool op (``_pool_branch``): conv 1×1-BN-ReLU, then 3×3 pooling, stride 1, ``"SAME"`` (the
  average excludes the padding);
* layer ``i > 0``: output = BN(op output + Σ chosen skip inputs) (``tf.add_n``, then
  ``batch_norm``); layer 0's output is the op output;
* channels stay ``out_filters`` through the reductions (``out_filters *= 2`` only ``if
  self.fixed_arc is not None``);
* BN (``image_ops.batch_norm``): epsilon 1e-3, decay 0.9; batch statistics in training,
  moving averages otherwise -- the macro reward is computed with ``is_training=False``
  (``build_valid_rl``), unlike micro.

The final network (``_fixed_layer``), :class:`ENASMacroNet`:

* conv op: ReLU-conv 1×1-BN, then ReLU-conv k×k-BN (pre-activation, no ReLU at the end);
* layer ``i > 0``: concatenate the chosen skip inputs and the op output (skips first, in layer
  order), then ReLU, conv 1×1 back to ``out_filters``, BN; the 1×1 conv exists even with no
  skips; layer 0's output is the op output;
* channels double at each reduction (the reductions map ``C`` to ``2C``): 96, 192, 384 in
  ``scripts/cifar10_macro_final.sh`` (``child_num_layers=24, child_out_filters=96,
  child_num_branches=4, child_keep_prob=0.50``).

Where we differ from, or add to, the authors' code (each choice is ours):

* **separable convs in the final network.** ``_fixed_layer`` maps ops 0..3 all to plain convs
  (sizes 3, 3, 5, 5), so the published network trained ops 1 and 3 as plain 5×5/3×3 convs.
  We build what the paper and the README describe: ReLU-conv 1×1-BN, then ReLU, depthwise k×k,
  pointwise 1×1, BN (:class:`torchnas.nn.ops.SepConv` with one repeat), the final-model
  version of the search network's separable branch;
* **pool ops in the final network.** ``_fixed_layer`` has ``pass`` for ops 4 and 5 (the final
  script uses only ops 0..3). We use ReLU-conv 1×1-BN then the pool, in the final model's
  pre-activation style;
* BN running statistics of the shared network: the authors compute every branch every step
  (the ``tf.case`` lambdas return tensors built outside them), so every branch's moving
  averages are updated each step; we run only the sampled op, so only its BN statistics move;
* weight init is He normal per module (:func:`torchnas.nn.ops.init_weights`; the authors'
  ``create_weight`` is not in the stored sources); the linear layer has ``num_classes``
  outputs (the authors': 10); the authors' ``--child_use_aux_heads`` and drop-path flags are
  silently ignored by ``GeneralChild`` -- here the networks have neither, and passing such
  options is an error.
"""
from __future__ import annotations

import re
from typing import Sequence

import torch
from torch import nn

from ..nn import ops as O
from ..registry import register
from .base import check_size_and_options, AnchorSet, Architecture, ArchitectureError, Choice, SearchSpace, Step
from .graph import Graph, Node, stack_graph

ENAS_MACRO_OPS = ("conv_3x3", "sep_conv_3x3", "conv_5x5", "sep_conv_5x5", "avg_pool_3x3", "max_pool_3x3")

# scripts/cifar10_macro_final.sh (the published 24-layer architecture), one entry per layer:
# the op index, then one skip bit per earlier layer.
PUBLISHED_ARC_LAYERS = (
    "0",
    "3 0",
    "0 1 0",
    "2 0 0 1",
    "2 0 0 0 0",
    "3 1 1 0 1 0",
    "2 0 0 0 0 0 1",
    "2 0 1 1 0 1 1 1",
    "1 0 1 1 1 0 1 0 1",
    "0 0 0 0 0 0 0 0 0 0",
    "2 0 0 0 0 0 1 0 0 0 0",
    "0 1 0 0 1 1 0 0 0 0 1 1",
    "2 0 1 0 0 0 0 0 1 0 1 1 0",
    "1 0 0 1 0 0 0 1 1 1 0 1 0 1",
    "0 1 1 0 1 0 1 0 0 0 0 0 1 0 0",
    "2 0 0 1 0 0 0 0 0 0 0 1 0 1 0 1",
    "2 0 1 0 0 0 1 0 0 1 1 1 1 0 0 1 0",
    "2 0 0 0 0 1 0 1 0 1 0 0 1 0 1 0 0 1",
    "3 0 1 1 0 1 0 0 0 0 0 1 0 1 0 1 0 0 0",
    "3 0 1 1 0 0 0 0 0 0 0 0 0 1 1 0 0 0 0 1",
    "0 1 0 0 1 0 1 1 0 0 0 1 0 0 0 0 0 1 1 0 0",
    "3 0 1 0 1 1 0 0 1 0 1 1 0 1 1 0 1 0 0 1 0 0",
    "0 1 0 1 0 1 0 0 0 0 0 0 0 0 1 0 1 0 0 1 0 0 0",
    "0 1 1 0 0 0 1 1 1 0 1 0 0 0 1 0 1 0 0 1 1 0 0 0",
)
PUBLISHED_ARC = " ".join(PUBLISHED_ARC_LAYERS)
# scripts/cifar10_macro_search.sh and scripts/cifar10_macro_final.sh
SEARCH_SETTINGS = {"num_layers": 12, "channels": 36, "keep_prob": 0.9}
FINAL_SETTINGS = {"num_layers": 24, "channels": 96, "keep_prob": 0.5}

Layer = tuple[int, tuple[int, ...]]      # (op index, skip bits set)


def _parse_op(name: str) -> tuple[str, int]:
    return O.parse_op(name, "enas-macro", ('conv', 'sep_conv', 'avg_pool', 'max_pool'))


def reduction_layers(num_layers: int) -> tuple[int, ...]:
    """The layers after which every earlier output is reduced (``general_child.py``:
    ``pool_distance = num_layers // 3``, ``pool_layers = [pool_distance - 1, 2 * pool_distance - 1]``;
    note ``2 * (L // 3) - 1``, not ``2 * L // 3 - 1``). Empty for fewer than 3 layers."""
    d = num_layers // 3
    return tuple(sorted({p for p in (d - 1, 2 * d - 1) if p >= 0}))


@register("space")
class ENASMacroSpace(SearchSpace):
    """ENAS macro networks of ``num_layers`` layers; ``ops`` in the authors' index order."""

    name = "enas-macro"

    def __init__(self, num_layers: int = 12, ops: Sequence[str] = ENAS_MACRO_OPS):
        self.num_layers, self.ops = check_size_and_options("enas-macro", "num_layers", num_layers, ops, _parse_op)
        ops = self.ops
        decisions, steps = [], []
        for i in range(self.num_layers):
            # general_controller.py _build_sampler: the op step, then the skip step whose
            # LSTM output becomes layer i's anchor (for layer 0 too).
            steps += [Step(len(decisions)), Step(len(decisions) + 1, anchor="h")]
            decisions += [Choice(f"layer{i}.op", ops, kind="op"), AnchorSet(f"layer{i}.skips", i)]
        self.decisions = tuple(decisions)
        self._steps = tuple(steps)


    def graph(self, arch, **options) -> Graph:
        """ENAS macro network (Pham et al. 2018, Fig. 7; Zoph & Le 2017, Fig. 7): image, stem, the
        layers (op; "then reduce" after a pool layer), the chain and the skips, GAP + softmax.
        Skip bit j of layer i reads ``prev_layers[j]``: the stem for j = 0, else layer j - 1."""
        layers, red = self.layers_of(arch), self.reduction_layers()
        src = ["stem"] + [f"layer{i}" for i in range(len(layers))]
        labels = [f"layer {i}: {self.ops[op]}" + ("\nthen reduce" if i in red else "")
                  for i, (op, _) in enumerate(layers)]
        return stack_graph(f"ENAS macro network ({len(layers)} layers)",
                           [Node("image", "image", "input"), Node("stem", "stem: conv 3x3", "layer")], labels,
                           [[src[i]] for i in range(len(layers))], [[src[j] for j in s] for _, s in layers],
                           Node("output", "GAP + softmax", "output"), [src[-1]])

    def config(self) -> dict:
        return {"name": self.name, "num_layers": self.num_layers, "ops": list(self.ops)}

    def reduction_layers(self) -> tuple[int, ...]:
        return reduction_layers(self.num_layers)

    def layers_of(self, arch: Architecture) -> list[Layer]:
        """Per layer ``(op index, skips)``; skip ``j`` of layer ``i`` is the input of layer
        ``j`` (stem output for ``j = 0``): see the module docstring."""
        v = self.check(arch).values
        return [(v[2 * i], tuple(v[2 * i + 1])) for i in range(self.num_layers)]

    # -- arcs ----------------------------------------------------------------------------------
    def to_arc(self, arch: Architecture) -> str:
        """The authors' arc: per layer the op index, then ``i`` skip bits (0/1)."""
        out = []
        for i, (op, skips) in enumerate(self.layers_of(arch)):
            out.append(str(op))
            out += ["1" if j in skips else "0" for j in range(i)]
        return " ".join(out)

    def _ops_text(self) -> str:
        return ", ".join(f"{k}={o}" for k, o in enumerate(self.ops))

    def from_arc(self, text: str) -> Architecture:
        """Parse the authors' arc (whitespace-separated integers); errors name the layer."""
        tokens = str(text).split()
        L = self.num_layers
        need = L * (L + 1) // 2
        values, pos = [], 0
        for i in range(L):
            if pos >= len(tokens):
                raise self._arc_ends(i, len(tokens))
            tok = tokens[pos]
            op = int(tok) if re.fullmatch(r"[0-9]+", tok) else -1
            if not 0 <= op < len(self.ops):
                raise ArchitectureError(
                    f"enas-macro arc, layer {i} (decision 'layer{i}.op'): {tok!r} is not an op index "
                    f"0..{len(self.ops) - 1} ({self._ops_text()})")
            bits = tokens[pos + 1:pos + 1 + i]
            skips = []
            for j, bit in enumerate(bits):
                if bit not in ("0", "1"):
                    raise ArchitectureError(
                        f"enas-macro arc, layer {i} (decision 'layer{i}.skips'): skip bit {j} is {bit!r}; "
                        f"expected 0 or 1 (one bit per earlier layer: {'layer 0' if i == 1 else f'layers 0..{i - 1}'})")
                if bit == "1":
                    skips.append(j)
            if len(bits) < i:
                raise self._arc_ends(i, len(tokens))
            values += [op, tuple(skips)]
            pos += 1 + i
        if pos != len(tokens):
            raise ArchitectureError(
                f"enas-macro arc has {len(tokens)} integers; {L} layers take {need} (layer i: op index then "
                f"i skip bits): {len(tokens) - need} left over after layer {L - 1}{self._fits(len(tokens))}")
        return self.make(values)

    def _arc_ends(self, i: int, n: int) -> ArchitectureError:
        L = self.num_layers
        return ArchitectureError(
            f"enas-macro arc ends in layer {i}: expected the op index and {i} skip bit(s) (decisions "
            f"'layer{i}.op', 'layer{i}.skips'); {L} layers take {L * (L + 1) // 2} integers, got {n}{self._fits(n)}")

    @staticmethod
    def _fits(n: int) -> str:
        """Which num_layers an arc of ``n`` integers would fit, if any."""
        k = int(((8 * n + 1) ** 0.5 - 1) / 2)
        for L in (k - 1, k, k + 1):
            if L >= 1 and L * (L + 1) // 2 == n:
                return f" (that many integers fit num_layers={L})"
        return ""

    def parse_arc(self, body: str) -> Architecture:
        return self.from_arc(body)

    # -- networks ------------------------------------------------------------------------------
    def child(self, arch: Architecture, in_channels: int, num_classes: int, channels: int = 36,
              keep_prob: float = 1.0, **kw) -> "ENASMacroNet":
        """The final (standalone) network of ``arch`` (``_fixed_layer`` rules, separable ops
        built as separable; module docstring). ``channels`` is the authors' ``out_filters``;
        ``scripts/cifar10_macro_final.sh``: 24 layers, ``channels=96, keep_prob=0.5``."""
        _no_extra(kw, "child")
        return ENASMacroNet(self.layers_of(arch), self.ops, in_channels, num_classes, channels, keep_prob)

    def shared(self, in_channels: int, num_classes: int, channels: int = 36, keep_prob: float = 1.0,
               **kw) -> "ENASMacroShared":
        """The shared-weight search network; ``forward(x, arch)`` runs the sampled ops.
        ``scripts/cifar10_macro_search.sh``: 12 layers, ``channels=36, keep_prob=0.9``."""
        _no_extra(kw, "shared")
        return ENASMacroShared(self, in_channels, num_classes, channels, keep_prob)

    def child_from_shared(self, shared_net: "ENASMacroShared", arch: Architecture) -> "ENASMacroSearchChild":
        """The standalone search-time sub-graph of ``arch`` with the shared weights copied in:
        it computes ``shared_net(x, arch)`` in train and eval mode. This is not the final
        network (:meth:`child`): see :class:`ENASMacroSearchChild`."""
        if tuple(shared_net.space_ops) != self.ops or shared_net.num_layers != self.num_layers:
            raise ValueError("the shared network was built for another enas-macro space")
        layers = self.layers_of(arch)
        h = shared_net.hparams
        net = ENASMacroSearchChild(layers, self.ops, h["in_channels"], h["num_classes"], h["channels"],
                                   h["keep_prob"])
        p = next(shared_net.parameters())
        net.to(device=p.device, dtype=p.dtype)
        src = shared_net.state_dict()
        # The child's modules are the shared network's, minus the ops not chosen, under the
        # same names: its state dict is a subset of the shared one.
        net.load_state_dict({k: src[k] for k in net.state_dict()})
        net.train(shared_net.training)
        return net


def _no_extra(kw: dict, what: str) -> None:
    if kw:
        raise TypeError(
            f"enas-macro {what}() got unexpected keyword(s) {sorted(kw)}; it takes channels and keep_prob "
            f"(the macro networks have no auxiliary head and no drop-path: the authors' GeneralChild "
            f"ignores those flags)")


# -- ops -----------------------------------------------------------------------------------------
def _conv_bn_relu(c_in: int, c_out: int, k: int) -> nn.Sequential:
    """Conv k×k ("SAME", no bias) → BN → ReLU: the search network's order (``_conv_branch``,
    ``_pool_branch``)."""
    return nn.Sequential(O.Conv2dSame(c_in, c_out, k), O.batch_norm(c_out), nn.ReLU())


def make_search_op(name: str, channels: int) -> nn.Module:
    """One branch of the search network (``general_child.py`` ``_conv_branch`` /
    ``_pool_branch`` with whole channels): conv 1×1-BN-ReLU, then conv k×k-BN-ReLU, or
    depthwise k×k + pointwise 1×1 then BN-ReLU, or 3×3 pooling (stride 1, "SAME")."""
    kind, k = _parse_op(name)
    C = channels
    if kind == "conv":
        return nn.Sequential(_conv_bn_relu(C, C, 1), _conv_bn_relu(C, C, k))
    if kind == "sep_conv":
        return nn.Sequential(_conv_bn_relu(C, C, 1),
                             nn.Sequential(O.Conv2dSame(C, C, k, groups=C), nn.Conv2d(C, C, 1, bias=False),
                                           O.batch_norm(C), nn.ReLU()))
    return nn.Sequential(_conv_bn_relu(C, C, 1), O.Pool(kind.split("_")[0], C, C, 1, kernel_size=k))


def make_final_op(name: str, channels: int) -> nn.Module:
    """One op of the final network (``_fixed_layer``, pre-activation): ReLU-conv 1×1-BN, then
    ReLU-conv k×k-BN; separable: ReLU, depthwise k×k, pointwise, BN (our choice: the authors
    build a plain conv); pool: the pool after the 1×1 block (our choice: the authors have
    none)."""
    kind, k = _parse_op(name)
    C = channels
    first = O.ReLUConvBN(C, C, 1)
    if kind == "conv":
        return nn.Sequential(first, O.ReLUConvBN(C, C, k))
    if kind == "sep_conv":
        return nn.Sequential(first, O.SepConv(C, C, k, repeats=1))
    return nn.Sequential(first, O.Pool(kind.split("_")[0], C, C, 1, kernel_size=k))


# -- networks ------------------------------------------------------------------------------------
class MacroLayer(nn.Module):
    """One layer position: ``ops`` (a ModuleDict keyed by op index: every op in the shared
    network, the chosen one in a standalone network), ``combine`` (the skip BN of the search
    network or the skip ReLU-conv1×1-BN of the final one; ``None`` for layer 0) and ``reduce``
    (one factorized reduction per ``prev_layers`` entry after a pool layer, else ``None``)."""

    def __init__(self, ops: nn.ModuleDict, combine: nn.Module | None, reduce: nn.ModuleList | None, concat: bool):
        super().__init__()
        self.ops, self.combine, self.reduce, self.concat = ops, combine, reduce, concat

    def forward(self, prev: list[torch.Tensor], op: int, skips: Sequence[int]) -> list[torch.Tensor]:
        """``prev`` is ``[stem, out_0, ..., out_{i-1}]`` (reduced where due); returns it with
        this layer's output appended, all reduced if this is a pool layer."""
        out = self.ops[str(op)](prev[-1])
        if self.combine is not None:
            if self.concat:   # _fixed_layer: concat(skips + [out]) -> ReLU -> conv1x1 -> BN
                out = self.combine(torch.cat([prev[j] for j in skips] + [out], dim=1))
            else:             # _enas_layer: BN(add_n(skips + [out]))
                for j in skips:
                    out = out + prev[j]
                out = self.combine(out)
        prev = prev + [out]
        if self.reduce is not None:
            prev = [r(t) for r, t in zip(self.reduce, prev)]
        return prev


class _MacroNet(nn.Module):
    """Stem, layers, classifier (``general_child.py`` ``_model``). ``op_sets[i]`` are the op
    indices layer ``i`` holds; ``skip_counts[i]`` the number of skips of layer ``i`` (final
    layout only: it sizes the 1×1 conv)."""

    def __init__(self, ops: Sequence[str], op_sets: Sequence[Sequence[int]], in_channels: int, num_classes: int,
                 channels: int, keep_prob: float, final: bool, skip_counts: Sequence[int] | None = None):
        super().__init__()
        num_layers = len(op_sets)
        if channels < 1:
            raise ValueError(f"enas-macro needs channels >= 1, got {channels}")
        if not final and channels % 2 and reduction_layers(num_layers):
            raise ValueError(f"the enas-macro search network needs an even number of channels "
                             f"(factorized reduction to the same width), got {channels}")
        if not 0 < keep_prob <= 1:
            raise ValueError(f"keep_prob must be in (0, 1], got {keep_prob}")
        self.hparams = dict(in_channels=in_channels, num_classes=num_classes, channels=channels, keep_prob=keep_prob)
        self.space_ops, self.num_layers, self.final = tuple(ops), num_layers, final
        self.reduction_layers = reduction_layers(num_layers)
        C = channels
        self.stem = nn.Sequential(O.Conv2dSame(in_channels, C, 3), O.batch_norm(C))
        make = make_final_op if final else make_search_op
        self.layers = nn.ModuleList()
        self.layer_channels = []
        for i, op_set in enumerate(op_sets):
            self.layer_channels.append(C)
            op_modules = nn.ModuleDict({str(k): make(ops[k], C) for k in op_set})
            combine = None
            if i > 0:
                combine = O.ReLUConvBN((skip_counts[i] + 1) * C, C, 1) if final else O.batch_norm(C)
            reduce = None
            if i in self.reduction_layers:
                c_out = 2 * C if final else C        # out_filters *= 2 only with a fixed arc
                reduce = nn.ModuleList(O.FactorizedReduce(C, c_out, 2) for _ in range(i + 2))
                C = c_out
            self.layers.append(MacroLayer(op_modules, combine, reduce, concat=final))
        self.out_channels = C
        self.dropout = nn.Dropout(1.0 - keep_prob)
        self.classifier = nn.Linear(C, num_classes, bias=False)
        O.init_weights(self)

    def _forward(self, x: torch.Tensor, layers: Sequence[Layer]) -> torch.Tensor:
        prev = [self.stem(x)]
        for layer, (op, skips) in zip(self.layers, layers):
            prev = layer(prev, op, skips)
        return self.classifier(self.dropout(prev[-1].mean((2, 3))))


class ENASMacroNet(_MacroNet):
    """The final ENAS macro network of one architecture (``_fixed_layer`` rules: skip inputs
    concatenated with the op output, then ReLU-conv1×1-BN; channels doubling at the
    reductions; separable ops separable). ``layers``: ``(op index, skips)`` per layer."""

    def __init__(self, layers: Sequence[Layer], ops: Sequence[str], in_channels: int, num_classes: int,
                 channels: int = 36, keep_prob: float = 1.0):
        self.spec = [(int(op), tuple(skips)) for op, skips in layers]
        super().__init__(ops, [[op] for op, _ in self.spec], in_channels, num_classes, channels, keep_prob,
                         final=True, skip_counts=[len(s) for _, s in self.spec])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._forward(x, self.spec)


class ENASMacroShared(_MacroNet):
    """The ENAS macro shared-weight search network (``_enas_layer`` rules: skip inputs summed
    with the op output, then BN; constant channels). Every layer holds every op; ``forward(x,
    arch)`` runs only the sampled ones, so only their weights (and the stem, skip BNs,
    reductions and classifier) receive gradients."""

    def __init__(self, space: ENASMacroSpace, in_channels: int, num_classes: int, channels: int = 36,
                 keep_prob: float = 1.0):
        self._space = space
        all_ops = list(range(len(space.ops)))
        super().__init__(space.ops, [all_ops] * space.num_layers, in_channels, num_classes, channels, keep_prob,
                         final=False)

    def forward(self, x: torch.Tensor, arch: Architecture) -> torch.Tensor:
        return self._forward(x, self._space.layers_of(arch))


class ENASMacroSearchChild(_MacroNet):
    """The search-time sub-graph of one architecture, as a standalone network.

    The authors build two different networks from one arc: the search network
    (``_enas_layer``: skips summed with the op output then BN, constant channels), in which a
    sampled architecture is a path through the shared weights, and the final network of the
    paper (``_fixed_layer``: skips concatenated, then ReLU-conv1×1-BN, channels doubling at
    the reductions), trained from scratch. They differ in structure and parameter shapes, so
    the shared weights cannot be loaded into the final network. This class is the first kind:
    the search network with only the chosen op per layer. Built by
    :meth:`ENASMacroSpace.child_from_shared` with the shared weights copied in, it computes
    what the shared network computes for that architecture -- the check that the weight
    sharing runs the right sub-graph, and a way to fine-tune or export one sampled child.
    :class:`ENASMacroNet` (:meth:`ENASMacroSpace.child`) is the second kind."""

    def __init__(self, layers: Sequence[Layer], ops: Sequence[str], in_channels: int, num_classes: int,
                 channels: int = 36, keep_prob: float = 1.0):
        self.spec = [(int(op), tuple(skips)) for op, skips in layers]
        super().__init__(ops, [[op] for op, _ in self.spec], in_channels, num_classes, channels, keep_prob,
                         final=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._forward(x, self.spec)


__all__ = ["ENASMacroSpace", "ENASMacroNet", "ENASMacroShared", "ENASMacroSearchChild", "MacroLayer",
           "ENAS_MACRO_OPS", "PUBLISHED_ARC", "PUBLISHED_ARC_LAYERS", "SEARCH_SETTINGS", "FINAL_SETTINGS",
           "make_search_op", "make_final_op", "reduction_layers"]
