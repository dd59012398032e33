"""The ENAS micro (convolutional cell) search space (Pham et al. 2018, §2.4).

Facts from the authors' code, melodyguan/enas (file names below are under ``src/cifar10/``
unless they start with ``scripts/``; read at commit 00787a5, ``image_ops.py`` at 026817d, the
final script at 014bae1):

Decisions and controller (``micro_controller.py``, README "micro search space"):

* two cells, normal then reduction, each of ``B = num_cells = 5`` nodes; node ``i`` (the
  authors' block ``i + 2``) picks ``index_1, op_1, index_2, op_2``; an index chooses among
  the two cell inputs (0, 1) and the earlier nodes (2 .. i+1); ops are numbered 0..4 =
  sep conv 3×3, sep conv 5×5, avg pool 3×3, max pool 3×3, identity;
* the controller program per cell: two LSTM steps whose anchors are zero vectors (their
  attention keys are not), then per node the steps index_1, index_2, op_1, op_2, then one more
  LSTM step whose output becomes the node's anchor; the reduction cell starts a fresh anchor
  list and keeps the LSTM state;
* an arc is, per node, ``index_1 op_1 index_2 op_2``; the full architecture is the normal arc
  followed by the reduction arc (``scripts/cifar10_micro_final.sh`` ``fixed_arc``).

Networks (``micro_child.py``):

* stem: conv 3×3 to ``3 * out_filters`` channels and BN, no ReLU; the first cell gets the stem
  output as both inputs;
* ``num_layers + 2`` cells; the two reduction cells are cells ``num_layers // 3`` and
  ``2 * (num_layers // 3) + 1``; each reduction doubles the channels. Search:
  ``num_layers=6, out_filters=20`` (``scripts/cifar10_micro_search.sh``); final:
  ``num_layers=15, out_filters=36`` (``scripts/cifar10_micro_final.sh``);
* a cell's inputs are the two previous cells' outputs, calibrated (``_maybe_calibrate_size``):
  input 0 goes through ReLU + factorized reduction when it is twice as large, else a
  ReLU-conv1×1-BN when its channel count differs; input 1 through ReLU-conv1×1-BN when its
  channel count differs;
* node = op1(input1) + op2(input2); every node or cell input that no node uses is a loose end,
  and the loose ends are concatenated;
* classifier: ReLU, global average pool, dropout (``keep_prob``), linear without bias.

The authors build the search (shared-weight) network and the final network differently, and
both layouts are available here (``layout``):

* ``"final"`` (``_fixed_layer``, used with ``--child_fixed_arc``): after the calibration, one
  more ReLU-conv1×1-BN on input 1 (``layer_base``); in a reduction cell the ops on the cell
  inputs have stride 2 (identity becomes a factorized reduction) and loose cell inputs are
  factorized-reduced; the cell output is the plain concatenation (``loose ends × out_filters``
  channels, no 1×1 conv); drop-path on every op but identity; separable-conv BN epsilon 1e-3.
* ``"search"`` (``_enas_layer``): no ``layer_base``; every op has stride 1; a reduction cell is
  preceded by a factorized reduction (no ReLU) of the previous output, and the cell's inputs
  are that previous output and its reduction (``_model``: ``layers = [layers[-1], x]``); the
  concatenated loose ends go through ReLU-conv1×1-BN back to ``out_filters`` (``final_conv``);
  separable-conv BN epsilon 1e-5; no drop-path; every BN uses batch statistics
  (``_model``: ``is_training = True`` when no fixed arc).

The shared network (``_enas_layer``, ``_enas_cell``, ``_enas_conv``) holds one set of separable
-conv weights (both stacked convs and their BN scale/offset) per cell position, node, slot
(``x`` = input1/op1 and ``y`` = input2/op2 are separate variable scopes), input index and
kernel size, and ``final_conv`` keeps one ``out_filters × out_filters`` block per possible loose
end, of which the loose ends of the sampled cell are gathered. The pool and identity channel
fixes of ``_enas_cell`` never fire (every input has ``out_filters`` channels after calibration)
and are left out.

Choices the authors' code does not fix, or where we differ:

* weight init is He normal per module (see :mod:`torchnas.nn.ops`); ``final_conv`` blocks use
  std ``sqrt(2 / out_filters)``; the authors' per-input weight rows would get TF's fan-in of the
  2-D variable instead;
* the shared network's dropout follows ``.train()``/``.eval()``; the authors keep it on when
  they score an architecture on validation data (``is_training`` forced to True); call
  ``.train()`` to do the same;
* the auxiliary head and the output layer have ``num_classes`` outputs (the authors': 10).
"""
from __future__ import annotations

import math
import re
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..nn import ops as O
from ..registry import register
from .base import check_size_and_options, Anchor, Architecture, ArchitectureError, Choice, SearchSpace, Step
from .graph import Graph, cell_graph

ENAS_MICRO_OPS = ("sep_conv_3x3", "sep_conv_5x5", "avg_pool_3x3", "max_pool_3x3", "identity")
# scripts/cifar10_micro_final.sh @014bae1 (the cell published with the paper), normal then reduction.
PUBLISHED_ARC = ("0 2 0 0 0 4 0 1 0 4 1 1 1 0 0 1 0 2 1 1",
                 "1 0 1 0 0 3 0 2 1 1 3 1 1 0 0 4 0 3 1 1")
SEARCH_SEP_CONV_EPS = 1e-5   # micro_child.py _enas_conv: fused_batch_norm(epsilon=1e-5)

Node = tuple[int, int, int, int]   # (input1, op1, input2, op2), the authors' arc order


def _parse_op(name: str) -> tuple[str, int]:
    return O.parse_op(name, "enas-micro", ('identity', 'sep_conv', 'avg_pool', 'max_pool'))


def make_op(name: str, channels: int, stride: int = 1, sep_eps: float = O.BN_EPS) -> nn.Module:
    """The module for one op on a ``channels``-channel input (``micro_child.py``
    ``_fixed_layer``/``_enas_cell``)."""
    kind, k = _parse_op(name)
    if kind == "sep_conv":
        return O.SepConv(channels, channels, k, stride, repeats=2, eps=sep_eps)
    if kind == "identity":
        return O.Identity(channels, channels, stride)
    return O.Pool(kind.split("_")[0], channels, channels, stride, kernel_size=k)


def reduction_layers(num_layers: int) -> tuple[int, int]:
    """``micro_child.py``: ``pool_distance = num_layers // 3``; the reduction cells are
    ``[pool_distance, 2 * pool_distance + 1]`` among ``num_layers + 2`` cells."""
    d = num_layers // 3
    return d, 2 * d + 1


def _loose_ends(nodes: Sequence[Node]) -> list[int]:
    used = {n[0] for n in nodes} | {n[2] for n in nodes}
    return [k for k in range(len(nodes) + 2) if k not in used]


def _calibrate0(c_in: int, channels: int, halve: bool) -> nn.Module | None:
    """``_maybe_calibrate_size``, input 0: ReLU + factorized reduction when twice as large,
    else ReLU-conv1×1-BN when the channel count differs."""
    if halve:
        return O.FactorizedReduce(c_in, channels, 2, relu=True)
    return O.ReLUConvBN(c_in, channels, 1) if c_in != channels else None


def _calibrate1(c_in: int, channels: int) -> nn.Module | None:
    return O.ReLUConvBN(c_in, channels, 1) if c_in != channels else None


@register("space")
class ENASMicroSpace(SearchSpace):
    """ENAS micro cells: ``num_nodes`` nodes per cell, ``ops`` in the authors' index order."""

    name = "enas-micro"

    def __init__(self, num_nodes: int = 5, ops: Sequence[str] = ENAS_MICRO_OPS):
        self.num_nodes, self.ops = check_size_and_options("enas-micro", "num_nodes", num_nodes, ops, _parse_op)
        ops = self.ops
        # micro_controller.py: the normal cell's op logits get a fixed b_soft_no_learn after the
        # tanh, [0.25, 0.25, -0.25, ...]: +0.25 for the two separable convolutions.
        prior = tuple(0.25 if o.startswith("sep_conv") else -0.25 for o in ops)
        decisions, steps = [], []
        for cell in ("normal", "reduce"):
            bias = prior if cell == "normal" else None
            # micro_controller.py _build_sampler: two g_emb steps with zero anchors; the
            # reduction sampler uses fresh anchor arrays.
            steps += [Step(None, anchor="zero", reset_anchors=cell == "reduce"), Step(None, anchor="zero")]
            for i in range(num_nodes):
                b = len(decisions)
                decisions += [Anchor(f"{cell}.node{i}.input1", 2 + i),
                              Choice(f"{cell}.node{i}.op1", ops, kind="op", bias=bias),
                              Anchor(f"{cell}.node{i}.input2", 2 + i),
                              Choice(f"{cell}.node{i}.op2", ops, kind="op", bias=bias)]
                # index_1, index_2, op_1, op_2, then the extra step that makes the node's anchor
                steps += [Step(b), Step(b + 2), Step(b + 1), Step(b + 3), Step(None, anchor="h")]
        self.decisions = tuple(decisions)
        self._steps = tuple(steps)


    def graph(self, arch, **options) -> Graph:
        """ENAS convolutional cells (Pham et al. 2018, Fig. 8): inputs h[i-2] (state 0, the
        output two cells back) and h[i-1] (state 1), B nodes (states 2..B+1, as the arc numbers
        them) that each add two op boxes fed by earlier states, and h[i], the concatenation of
        the loose ends (``micro_child.py``)."""
        g = Graph("ENAS convolutional cells", [], [], ordered=True)
        for prefix, title, cell in zip(("normal.", "reduce."), ("normal cell", "reduction cell"), self.cells_of(arch)):
            nodes = [(f"node {i + 2}: add", [(i1, self.ops[o1]), (i2, self.ops[o2])])   # numbered as in the arc
                     for i, (i1, o1, i2, o2) in enumerate(cell)]
            cell_graph(g, prefix, title, ["h[i-2] (0)", "h[i-1] (1)"], nodes, "h[i]\nconcat", op_boxes=True)
        return g

    def config(self) -> dict:
        return {"name": self.name, "num_nodes": self.num_nodes, "ops": list(self.ops)}

    # -- arcs ----------------------------------------------------------------------------------
    def cells_of(self, arch: Architecture) -> tuple[list[Node], list[Node]]:
        """(normal nodes, reduction nodes), each node ``(input1, op1, input2, op2)``."""
        v = self.check(arch).values
        n = 4 * self.num_nodes
        return ([tuple(v[k:k + 4]) for k in range(0, n, 4)], [tuple(v[k:k + 4]) for k in range(n, 2 * n, 4)])

    def to_arc(self, arch: Architecture) -> tuple[str, str]:
        """The authors' arc strings: per node ``input1 op1 input2 op2``, normal then reduction."""
        v = self.check(arch).values
        n = 4 * self.num_nodes
        return " ".join(map(str, v[:n])), " ".join(map(str, v[n:]))

    def from_arc(self, normal: str, reduce: str) -> Architecture:
        """Parse the authors' two arc strings (space-separated integers). An invalid value
        raises :class:`ArchitectureError` naming the decision (e.g. ``normal.node2.input1``) and
        the values it allows."""
        values = []
        for cell, text in (("normal", normal), ("reduce", reduce)):
            tokens = str(text).split()
            if len(tokens) != 4 * self.num_nodes:
                raise ArchitectureError(
                    f"enas-micro {cell} cell arc has {len(tokens)} integers; expected {4 * self.num_nodes} "
                    f"({self.num_nodes} nodes x 'input1 op1 input2 op2')")
            for tok in tokens:
                d = self.decisions[len(values)]
                try:
                    values.append(int(tok))
                except ValueError:
                    raise ArchitectureError(f"decision {d.name!r}: {tok!r} is not an integer "
                                            f"({self._allowed(d)})") from None
        for d, v in zip(self.decisions, values):
            if not 0 <= v < d.num_values():
                raise ArchitectureError(f"decision {d.name!r}: {v} is not {self._allowed(d)}")
        return self.make(values)

    def _allowed(self, d) -> str:
        if isinstance(d, Anchor):
            node = d.num_anchors - 2
            earlier = f" or node0..node{node - 1} as 2..{d.num_anchors - 1}" if node else ""
            return f"an input index 0..{d.num_anchors - 1} (node{node} takes the cell inputs 0, 1{earlier})"
        return "an op index 0..%d (%s)" % (len(self.ops) - 1, ", ".join(f"{k}={o}" for k, o in enumerate(self.ops)))

    def parse_arc(self, body: str) -> Architecture:
        """The authors' arc: 8B integers (normal then reduction cell), optionally split into
        the two cells by ``|`` or ``;``."""
        parts = re.split(r"[|;]", body)
        if len(parts) == 2:
            return self.from_arc(*parts)
        tokens = body.split()
        n = 4 * self.num_nodes
        if len(parts) != 1 or len(tokens) != 2 * n:
            raise ArchitectureError(
                f"enas-micro arc must be 2 cells x {self.num_nodes} nodes x 4 = {2 * n} integers "
                f"(normal cell then reduction cell, optionally separated by '|'); got {body!r}")
        return self.from_arc(" ".join(tokens[:n]), " ".join(tokens[n:]))

    # -- networks ------------------------------------------------------------------------------
    def child(self, arch: Architecture, in_channels: int, num_classes: int, channels: int = 20,
              num_layers: int = 6, *, aux_head: bool = False, image_size: int = 32, keep_prob: float = 1.0,
              drop_path_keep_prob: float = 1.0, layout: str = "final") -> "ENASMicroNet":
        """The standalone network of ``arch``. ``channels`` is the authors' ``out_filters``
        and ``num_layers`` their ``num_layers`` (normal cells in all; 2 reduction cells are
        added). The final-training settings of ``scripts/cifar10_micro_final.sh`` are
        ``channels=36, num_layers=15, aux_head=True, keep_prob=0.8, drop_path_keep_prob=0.6``.
        ``image_size`` only sizes the auxiliary head."""
        normal, reduce = self.cells_of(arch)
        return ENASMicroNet(normal, reduce, self.ops, in_channels, num_classes, channels, num_layers,
                            layout=layout, aux_head=aux_head, image_size=image_size, keep_prob=keep_prob,
                            drop_path_keep_prob=drop_path_keep_prob)

    def shared(self, in_channels: int, num_classes: int, channels: int = 20, num_layers: int = 6, *,
               aux_head: bool = False, image_size: int = 32, keep_prob: float = 1.0,
               batch_stats: bool = True) -> "ENASMicroShared":
        """The shared-weight search network; ``forward(x, arch)`` runs the sampled cells.
        ``scripts/cifar10_micro_search.sh``: ``channels=20, num_layers=6, aux_head=True,
        keep_prob=0.9``. ``batch_stats`` (the authors' behaviour) makes every BN use batch
        statistics in eval mode too."""
        return ENASMicroShared(self, in_channels, num_classes, channels, num_layers, aux_head=aux_head,
                               image_size=image_size, keep_prob=keep_prob, batch_stats=batch_stats)

    def child_from_shared(self, shared_net: "ENASMicroShared", arch: Architecture) -> "ENASMicroNet":
        """A standalone network (``layout="search"``) with the shared weights of ``arch``
        copied in: it computes ``shared_net(x, arch)``, in train and eval mode. Its BNs use
        batch statistics when the shared network's do."""
        normal, reduce = self.cells_of(arch)
        if tuple(shared_net.space_ops) != self.ops or shared_net.num_nodes != self.num_nodes:
            raise ValueError("the shared network was built for another enas-micro space")
        h = shared_net.hparams
        net = ENASMicroNet(normal, reduce, self.ops, h["in_channels"], h["num_classes"], h["channels"],
                           h["num_layers"], layout="search", aux_head=h["aux_head"], image_size=h["image_size"],
                           keep_prob=h["keep_prob"])
        if shared_net.batch_stats:
            O.use_batch_stats(net)
        p = next(shared_net.parameters())
        net.to(device=p.device, dtype=p.dtype)
        with torch.no_grad():
            for name in ("stem", "pre_reduce", "classifier", "aux_head"):
                if getattr(net, name, None) is not None:
                    getattr(net, name).load_state_dict(getattr(shared_net, name).state_dict())
            for layer, (cell, scell) in enumerate(zip(net.cells, shared_net.cells)):
                nodes = reduce if layer in net.reduction_layers else normal
                for name in ("pre0", "pre1"):
                    if getattr(cell, name) is not None:
                        getattr(cell, name).load_state_dict(getattr(scell, name).state_dict())
                for i, node in enumerate(nodes):
                    for slot in range(2):
                        src = scell.branch(i, slot, node[2 * slot], node[2 * slot + 1])
                        cell.node_ops[2 * i + slot].load_state_dict(src.state_dict())
                cell.final_conv[1].weight.copy_(scell.final_weight(cell.loose))
                cell.final_conv[2].load_state_dict(scell.final_bn.state_dict())
        net.train(shared_net.training)
        return net


# ----------------------------------------------------------------------------------------------
class _MicroBackbone(nn.Module):
    """Stem, the cell sequence with its reductions, auxiliary head and classifier, common to
    the standalone and the shared network (``micro_child.py`` ``_model``). Subclasses make
    the cells (``_make_cell``) and run them (``_run_cell``)."""

    def __init__(self, in_channels: int, num_classes: int, channels: int, num_layers: int, layout: str,
                 aux_head: bool, image_size: int, keep_prob: float):
        super().__init__()
        if layout not in ("final", "search"):
            raise ValueError(f"enas-micro layout must be 'final' or 'search', not {layout!r}")
        if channels < 2 or channels % 2:
            raise ValueError(f"enas-micro needs an even number of channels (factorized reduction), got {channels}")
        if num_layers < 1:
            raise ValueError(f"enas-micro needs num_layers >= 1, got {num_layers}")
        if not 0 < keep_prob <= 1:
            raise ValueError(f"keep_prob must be in (0, 1], got {keep_prob}")
        self.hparams = dict(in_channels=in_channels, num_classes=num_classes, channels=channels,
                            num_layers=num_layers, aux_head=aux_head, image_size=image_size, keep_prob=keep_prob)
        self.layout, self.num_layers = layout, num_layers
        self.reduction_layers = reduction_layers(num_layers)
        # micro_child.py __init__: aux_head_indices = [pool_layers[-1] + 1]
        self.aux_layer = self.reduction_layers[-1] + 1 if aux_head else None
        self.compute_aux = True     # off while scoring rewards: the ENAS loop only needs the logits
        if aux_head and self.aux_layer >= num_layers + 2:
            raise ValueError(f"no cell after the second reduction for the auxiliary head (num_layers={num_layers})")
        C = channels
        self.stem = nn.Sequential(O.Conv2dSame(in_channels, 3 * C, 3), O.batch_norm(3 * C))
        self.pre_reduce = nn.ModuleDict()
        self.cells = nn.ModuleList()
        self.aux_head = None
        c0 = c1 = 3 * C
        h0 = h1 = image_size
        for layer in range(num_layers + 2):
            reduction = layer in self.reduction_layers
            if reduction:
                C *= 2
                if layout == "search":   # _model: x = FR(x); layers = [layers[-1], x]
                    self.pre_reduce[str(layer)] = O.FactorizedReduce(c1, C, 2)
                    c0, h0, c1, h1 = c1, h1, C, -(-h1 // 2)
            cell = self._make_cell(layer, reduction, c0, c1, h0 != h1, C)
            self.cells.append(cell)
            h_out = -(-h1 // 2) if reduction and layout == "final" else h1
            c0, h0, c1, h1 = c1, h1, cell.out_channels, h_out
            if layer == self.aux_layer:
                self.aux_head = O.AuxHead(c1, num_classes, h1)
        self.out_channels = c1
        self.dropout = nn.Dropout(1.0 - keep_prob)
        self.classifier = nn.Linear(c1, num_classes, bias=False)
        O.init_weights(self)

    def _make_cell(self, layer, reduction, c0, c1, halve0, channels) -> nn.Module:
        raise NotImplementedError

    def _run_cell(self, layer, cell, s0, s1, ctx):
        raise NotImplementedError

    def _forward(self, x: torch.Tensor, ctx=None):
        s0 = s1 = self.stem(x)
        aux = None
        for layer, cell in enumerate(self.cells):
            if str(layer) in self.pre_reduce:
                s0, s1 = s1, self.pre_reduce[str(layer)](s1)
            s0, s1 = s1, self._run_cell(layer, cell, s0, s1, ctx)
            if layer == self.aux_layer and self.training and self.compute_aux:
                aux = self.aux_head(s1)
        logits = self.classifier(self.dropout(F.relu(s1).mean((2, 3))))
        return (logits, aux) if aux is not None else logits


class MicroCell(nn.Module):
    """One cell of a standalone network (``micro_child.py`` ``_fixed_layer`` for
    ``layout="final"``, ``_enas_layer`` with fixed choices for ``layout="search"``)."""

    def __init__(self, nodes: Sequence[Node], ops: Sequence[str], c0: int, c1: int, halve0: bool,
                 channels: int, reduction: bool, layout: str):
        super().__init__()
        C = channels
        self.nodes = [tuple(int(v) for v in n) for n in nodes]
        self.final = layout == "final"
        self.pre0 = _calibrate0(c0, C, halve0)
        self.pre1 = _calibrate1(c1, C)
        self.base = O.ReLUConvBN(C, C, 1) if self.final else None            # _fixed_layer: layer_base
        stride = 2 if reduction and self.final else 1
        sep_eps = O.BN_EPS if self.final else SEARCH_SEP_CONV_EPS
        self.node_ops = nn.ModuleList()
        self.drop = []                                                        # drop-path on op i?
        for inp1, op1, inp2, op2 in self.nodes:
            for inp, op in ((inp1, op1), (inp2, op2)):
                self.node_ops.append(make_op(ops[op], C, stride if inp < 2 else 1, sep_eps))
                self.drop.append(ops[op] != "identity")                       # x_op in [0, 1, 2, 3]
        self.loose = _loose_ends(self.nodes)
        self.shrink = nn.ModuleDict()
        if self.final:   # _fixed_combine: loose ends larger than the smallest are reduced
            if stride == 2:
                for k in self.loose:
                    if k < 2:
                        self.shrink[str(k)] = O.FactorizedReduce(C, C, 2)
            self.final_conv = None
            self.out_channels = len(self.loose) * C
        else:            # _enas_layer: final_conv back to out_filters
            self.final_conv = O.ReLUConvBN(len(self.loose) * C, C, 1)
            self.out_channels = C

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, drop_path_keep_prob: float = 1.0) -> torch.Tensor:
        if self.pre0 is not None:
            s0 = self.pre0(s0)
        if self.pre1 is not None:
            s1 = self.pre1(s1)
        if self.base is not None:
            s1 = self.base(s1)
        states = [s0, s1]
        drop = self.final and self.training and drop_path_keep_prob < 1.0
        for i, (inp1, _, inp2, _) in enumerate(self.nodes):
            out = []
            for k, inp in ((2 * i, inp1), (2 * i + 1, inp2)):
                h = self.node_ops[k](states[inp])
                if drop and self.drop[k]:
                    h = O.drop_path(h, drop_path_keep_prob)
                out.append(h)
            states.append(out[0] + out[1])
        outs = [self.shrink[str(k)](states[k]) if str(k) in self.shrink else states[k] for k in self.loose]
        out = torch.cat(outs, dim=1) if len(outs) > 1 else outs[0]
        return out if self.final_conv is None else self.final_conv(out)


class ENASMicroNet(_MicroBackbone):
    """A standalone ENAS micro network: stem, ``num_layers + 2`` cells, classifier.

    In training mode with ``aux_head=True`` the forward pass returns ``(logits, aux_logits)``.
    ``drop_path_keep_prob`` is the attribute a trainer schedules: the authors raise the drop
    rate linearly with the training step (``micro_child.py`` ``_apply_drop_path``:
    ``keep = 1 - min(1, (step + 1) / num_train_steps) * (1 - drop_path_keep_prob)``) and scale it
    by depth; set the attribute to the step-scheduled value and cell ``l`` uses
    ``1 - (l + 1) / (num_layers + 2) * (1 - drop_path_keep_prob)``."""

    def __init__(self, normal: Sequence[Node], reduce: Sequence[Node], ops: Sequence[str], in_channels: int,
                 num_classes: int, channels: int = 20, num_layers: int = 6, *, layout: str = "final",
                 aux_head: bool = False, image_size: int = 32, keep_prob: float = 1.0,
                 drop_path_keep_prob: float = 1.0):
        self._spec = (list(normal), list(reduce), tuple(ops))
        super().__init__(in_channels, num_classes, channels, num_layers, layout, aux_head, image_size, keep_prob)
        self.drop_path_keep_prob = drop_path_keep_prob

    def _make_cell(self, layer, reduction, c0, c1, halve0, channels):
        normal, reduce, ops = self._spec
        return MicroCell(reduce if reduction else normal, ops, c0, c1, halve0, channels, reduction, self.layout)

    def layer_keep_prob(self, layer: int) -> float:
        return 1.0 - (layer + 1) / (self.num_layers + 2) * (1.0 - self.drop_path_keep_prob)

    def _run_cell(self, layer, cell, s0, s1, ctx):
        return cell(s0, s1, self.layer_keep_prob(layer))

    def forward(self, x: torch.Tensor):
        return self._forward(x)


class SharedCell(nn.Module):
    """One cell position of the shared network (``micro_child.py`` ``_enas_layer``): fixed
    calibrations, per node/slot/input index a separable conv per kernel size (weight-free
    ops need none), and a ``final_conv`` block per possible loose end."""

    def __init__(self, num_nodes: int, ops: Sequence[str], c0: int, c1: int, halve0: bool, channels: int):
        super().__init__()
        C = self.channels = channels
        self.pre0 = _calibrate0(c0, C, halve0)
        self.pre1 = _calibrate1(c1, C)
        weighted = [k for k, name in enumerate(ops) if _parse_op(name)[0] == "sep_conv"]
        self.free_ops = nn.ModuleDict({str(k): make_op(name, C) for k, name in enumerate(ops) if k not in weighted})
        # branches[node][slot][input] = {op index: SepConv}
        self.branches = nn.ModuleList(
            nn.ModuleList(
                nn.ModuleList(nn.ModuleDict({str(k): make_op(ops[k], C, 1, SEARCH_SEP_CONV_EPS) for k in weighted})
                              for _ in range(2 + i))
                for _ in range(2))
            for i in range(num_nodes))
        # final_conv/w: [num_cells + 2, out_filters * out_filters], one block per loose-end candidate
        self.final_w = nn.Parameter(torch.randn(num_nodes + 2, C, C) * math.sqrt(2.0 / C))
        self.final_bn = O.batch_norm(C)
        self.out_channels = C

    def branch(self, node: int, slot: int, inp: int, op: int) -> nn.Module:
        ops = self.branches[node][slot][inp]
        return ops[str(op)] if str(op) in ops else self.free_ops[str(op)]

    def final_weight(self, loose: Sequence[int]) -> torch.Tensor:
        """The 1×1 conv weight (C, len(loose)·C, 1, 1) over the concatenated loose ends."""
        w = self.final_w[list(loose)]                                     # (n, C_out, C_in)
        return w.permute(1, 0, 2).reshape(self.channels, len(loose) * self.channels, 1, 1)

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, nodes: Sequence[Node]) -> torch.Tensor:
        if self.pre0 is not None:
            s0 = self.pre0(s0)
        if self.pre1 is not None:
            s1 = self.pre1(s1)
        states = [s0, s1]
        for i, (inp1, op1, inp2, op2) in enumerate(nodes):
            states.append(self.branch(i, 0, inp1, op1)(states[inp1]) + self.branch(i, 1, inp2, op2)(states[inp2]))
        loose = _loose_ends(nodes)
        out = torch.cat([states[k] for k in loose], dim=1) if len(loose) > 1 else states[loose[0]]
        return self.final_bn(F.conv2d(F.relu(out), self.final_weight(loose)))


class ENASMicroShared(_MicroBackbone):
    """The ENAS micro shared-weight network; ``forward(x, arch)`` runs only the sampled path,
    so only its weights receive gradients."""

    def __init__(self, space: ENASMicroSpace, in_channels: int, num_classes: int, channels: int = 20,
                 num_layers: int = 6, *, aux_head: bool = False, image_size: int = 32, keep_prob: float = 1.0,
                 batch_stats: bool = True):
        self.space_ops, self.num_nodes = tuple(space.ops), space.num_nodes
        self._space = space
        super().__init__(in_channels, num_classes, channels, num_layers, "search", aux_head, image_size, keep_prob)
        self.batch_stats = batch_stats
        if batch_stats:
            O.use_batch_stats(self)

    def _make_cell(self, layer, reduction, c0, c1, halve0, channels):
        return SharedCell(self.num_nodes, self.space_ops, c0, c1, halve0, channels)

    def _run_cell(self, layer, cell, s0, s1, ctx):
        normal, reduce = ctx
        return cell(s0, s1, reduce if layer in self.reduction_layers else normal)

    def forward(self, x: torch.Tensor, arch: Architecture):
        return self._forward(x, self._space.cells_of(arch))


__all__ = ["ENASMicroSpace", "ENASMicroNet", "ENASMicroShared", "MicroCell", "SharedCell", "ENAS_MICRO_OPS",
           "PUBLISHED_ARC", "make_op", "reduction_layers"]
