"""Zoph & Le's recurrent-cell search space (2017, §3.4 and Fig. 5; §4.2): a tree that computes
``h_t`` from ``x_t`` and ``h_{t-1}``, with a memory state ``c`` injected into it.

The tree has ``base`` leaves ("the number of input pairs to the RNN cell is called the base
number"; 8 in the paper's search, 2 in Fig. 5's worked example) and ``2·base − 1`` nodes, indexed
leaves first and then layer by layer up to the root (Fig. 5: leaves 0 and 1, root 2; base 8:
leaves 0–7, then 8–11, 12–13, root 14). Leaf ``j`` combines ``W_{2j+1} x_t`` and
``W_{2j+2} h_{t-1}``; internal node ``k`` of a layer combines nodes ``2k`` and ``2k + 1`` of the
layer below and has no weights ("we don't have any learnable parameters for the internal nodes
of the tree"). The controller predicts, in this order (4·base + 2 decisions):

* per node, a combination (``add``, ``elem_mult``) and an activation (``identity``, ``tanh``,
  ``sigmoid``, ``relu``): ``node{i}.combine``, ``node{i}.act``;
* "cell inject": the combination and activation that merge ``c_{t-1}`` into a node's output;
* "cell indices": the node whose value *before* its activation is ``c_t``, then the node into
  whose output (after its activation) ``c_{t-1}`` is injected; later nodes see the injected
  value. ``h_t`` is the root's output.

With base 8 that is 8^15 · 8 · 15² ≈ 6.3 × 10^16 cells, the paper's "6 × 10^16". The cell found
by the paper's search, shipped as TensorFlow's ``NASCell``, is :data:`NAS_CELL` (its
equations are checked against TensorFlow Addons' in the tests). The combination and activation
lists are settings (``max`` and ``sin`` are also known); the paper's are the defaults.
"""
from __future__ import annotations

import torch
from torch import nn

from ..nn.lm import MemoryCell
from ..registry import register
from .base import Architecture, ArchitectureError, Choice, SearchSpace
from .graph import Edge, Graph, Node

COMBINATIONS = ("add", "elem_mult")                         # Zoph & Le §4.2
ACTIVATIONS = ("identity", "tanh", "sigmoid", "relu")
_COMBINE = {"add": torch.add, "elem_mult": torch.mul, "max": torch.maximum}
_ACT = {"identity": lambda v: v, "tanh": torch.tanh, "sigmoid": torch.sigmoid, "relu": torch.relu, "sin": torch.sin}
_SYMBOL = {"add": "+", "elem_mult": "*", "max": "max"}

# TensorFlow's NASCell (tf.contrib.rnn, then TensorFlow Addons rnn/nas_cell.py): the cell of the
# paper's search, base 8. Leaves 0-7, nodes 8-11, 12-13 and the root 14; c_{t-1} injected
# (add, tanh) into node 8, c_t taken from node 12.
NAS_CELL = ("nas-rnn:add,sigmoid,add,relu,add,sigmoid,elem_mult,relu,add,tanh,add,sigmoid,add,tanh,add,sigmoid,"
            "elem_mult,tanh,add,tanh,elem_mult,tanh,add,sigmoid,elem_mult,identity,add,tanh,elem_mult,tanh,"
            "add,tanh,12,8")


class Tree:
    """An architecture of the space, decoded: ``nodes[i] = (combination, activation)``,
    ``inject = (combination, activation)``, ``cell_index`` and ``inject_index``, and each
    internal node's two inputs."""

    def __init__(self, base: int, nodes, inject, cell_index: int, inject_index: int):
        self.base, self.nodes, self.inject = base, tuple(nodes), tuple(inject)
        self.cell_index, self.inject_index = cell_index, inject_index
        self.inputs: dict[int, tuple[int, int]] = {}
        below, width, first = 0, base, base                     # the layer below starts at node `below`
        while width > 1:
            for k in range(width // 2):
                self.inputs[first + k] = (below + 2 * k, below + 2 * k + 1)
            below, first, width = first, first + width // 2, width // 2

    @property
    def root(self) -> int:
        return len(self.nodes) - 1


def step(tree: Tree, xw: list[torch.Tensor], hw: list[torch.Tensor], c_prev: torch.Tensor):
    """One time step of ``tree`` given the leaves' projected inputs ``xw[j] = W_{2j+1} x_t`` and
    ``hw[j] = W_{2j+2} h_{t-1}``: returns ``(h_t, c_t)``."""
    out: list[torch.Tensor] = []
    c_t = None
    for i, (comb, act) in enumerate(tree.nodes):
        a, b = (xw[i], hw[i]) if i < tree.base else (out[tree.inputs[i][0]], out[tree.inputs[i][1]])
        v = _COMBINE[comb](a, b)
        if i == tree.cell_index:
            c_t = v                                             # before the activation (Fig. 5)
        o = _ACT[act](v)
        if i == tree.inject_index:
            o = _ACT[tree.inject[1]](_COMBINE[tree.inject[0]](o, c_prev))
        out.append(o)
    return out[tree.root], c_t


class NASRNNCell(MemoryCell):
    """The cell of one architecture, with the interface of the project's language-model cells
    (:class:`torchnas.nn.lm.MemoryCell`): state ``(h, c)``. Weights: ``w_x`` ``[I, base·H]`` and
    ``w_h`` ``[H, base·H]``, column block ``j`` feeding leaf ``j``; with ``bias`` one ``[base·H]``
    vector on the recurrent side (TensorFlow's ``NASCell`` layout, whose default has none)."""

    def __init__(self, tree: Tree, input_size: int, hidden_size: int, init_range: float = 0.04, bias: bool = False):
        super().__init__()
        self.tree, self.input_size, self.hidden_size = tree, input_size, hidden_size
        n = tree.base * hidden_size
        self.w_x = nn.Parameter(torch.empty(input_size, n).uniform_(-init_range, init_range))
        self.w_h = nn.Parameter(torch.empty(hidden_size, n).uniform_(-init_range, init_range))
        self.bias = nn.Parameter(torch.zeros(n)) if bias else None

    def project_inputs(self, x: torch.Tensor, x_mask: torch.Tensor | None = None) -> torch.Tensor:
        return (x if x_mask is None else x * x_mask) @ self.w_x

    def recur(self, xp_t, state, plan=None, h_mask=None):
        h, c = state
        hw = (h if h_mask is None else h * h_mask) @ self.w_h
        if self.bias is not None:
            hw = hw + self.bias
        h, c = step(self.tree, xp_t.chunk(self.tree.base, -1), hw.chunk(self.tree.base, -1), c)
        return h, (h, c)

    def export_source(self, prefix: str = "self.cell", layer: int = 0, first: int = 0) -> dict:
        """This cell's code in a standalone python file (``torchnas.export``): its parameters
        (under ``prefix``), and a loop over the window that reads layer ``layer``'s input (the
        embedded tokens, or ``y{layer-1}``) and its state ``state[first], state[first + 1]``
        and leaves the outputs in ``y{layer}``."""
        H, n, t, k = self.hidden_size, self.tree.base * self.hidden_size, self.tree, layer
        init = [f"{prefix}.w_x = nn.Parameter(torch.zeros({self.input_size}, {n}))",
                f"{prefix}.w_h = nn.Parameter(torch.zeros({H}, {n}))"]
        if self.bias is not None:
            init.append(f"{prefix}.bias = nn.Parameter(torch.zeros({n}))")
        fn = {"add": "({} + {})", "elem_mult": "({} * {})", "max": "torch.maximum({}, {})"}
        act = {"identity": "{}", "tanh": "torch.tanh({})", "sigmoid": "torch.sigmoid({})", "relu": "torch.relu({})",
               "sin": "torch.sin({})"}
        step = [f"xw = xp[t].chunk({t.base}, -1)",
                f"hw = (h{k} @ {prefix}.w_h" + (f" + {prefix}.bias" if self.bias is not None else "") +
                f").chunk({t.base}, -1)"]
        for i, (comb, a) in enumerate(t.nodes):
            args = (f"xw[{i}]", f"hw[{i}]") if i < t.base else tuple(f"o{j}" for j in t.inputs[i])
            step.append(f"v{i} = " + fn[comb].format(*args))
            if i == t.cell_index:
                step.append(f"c_new = v{i}")
            step.append(f"o{i} = " + act[a].format(f"v{i}"))
            if i == t.inject_index:
                step.append(f"o{i} = " + act[t.inject[1]].format(fn[t.inject[0]].format(f"o{i}", f"c{k}")))
        step += [f"h{k}, c{k} = o{t.root}, c_new", f"outs{k}.append(h{k})"]
        inp = "E[tokens]" if k == 0 else f"y{k - 1}"
        body = [f"h{k}, c{k} = state[{first}], state[{first + 1}]", f"xp = {inp} @ {prefix}.w_x",
                f"outs{k}: List[torch.Tensor] = []", "for t in range(tokens.shape[0]):"]
        body += ["    " + line for line in step] + [f"y{k} = torch.stack(outs{k})"]
        return {"init": init, "states": 2, "body": body, "out": f"y{k}", "last": [f"h{k}", f"c{k}"],
                "what": f"Zoph & Le tree cell, base {t.base}, {describe(t)}"}


def describe(tree: Tree) -> str:
    nodes = "; ".join(f"{i}: {a}({c})" for i, (c, a) in enumerate(tree.nodes))
    return (f"nodes {nodes}; c[t-1] merged by {tree.inject[1]}({tree.inject[0]}) into node {tree.inject_index}; "
            f"c[t] from node {tree.cell_index}")


@register("space")
class NASRNNSpace(SearchSpace):
    """Zoph & Le's recurrent-cell tree (module docstring); ``base`` a power of two >= 2."""
    name = "nas-rnn"
    task = "language-modeling"

    def __init__(self, base: int = 8, combinations=COMBINATIONS, activations=ACTIVATIONS):
        if base < 2 or base & (base - 1):
            raise ValueError(f"nas-rnn needs a base number that is a power of two >= 2 (8 in the paper), got {base}")
        for what, given, known in (("combination", combinations, _COMBINE), ("activation", activations, _ACT)):
            bad = [o for o in given if o not in known]
            if bad or not given:
                raise ValueError(f"nas-rnn {what}s must be some of {', '.join(known)}; got {list(given)}")
        self.base = int(base)
        self.combinations, self.activations = tuple(combinations), tuple(activations)
        n = 2 * self.base - 1
        ds = []
        for i in range(n):
            ds += [Choice(f"node{i}.combine", self.combinations, kind="combine"),
                   Choice(f"node{i}.act", self.activations, kind="act")]
        indices = tuple(str(i) for i in range(n))
        ds += [Choice("inject.combine", self.combinations, kind="combine"),
               Choice("inject.act", self.activations, kind="act"),
               Choice("cell_index", indices, kind="index"), Choice("inject_index", indices, kind="index")]
        self.decisions = tuple(ds)

    @property
    def num_nodes(self) -> int:
        return 2 * self.base - 1

    def tree(self, arch: Architecture) -> Tree:
        v = self.check(arch).values
        n, c, a = self.num_nodes, self.combinations, self.activations
        nodes = [(c[v[2 * i]], a[v[2 * i + 1]]) for i in range(n)]
        return Tree(self.base, nodes, (c[v[2 * n]], a[v[2 * n + 1]]), v[2 * n + 2], v[2 * n + 3])

    def child(self, arch: Architecture, input_size: int, hidden_size: int, init_range: float = 0.04,
              bias: bool = False) -> NASRNNCell:
        """The standalone cell of ``arch``."""
        return NASRNNCell(self.tree(arch), input_size, hidden_size, init_range=init_range, bias=bias)

    def language_model(self, arch: Architecture, vocab_size: int, hidden_size: int = 200, *, num_layers: int = 2,
                       init_range: float = 0.04, dropout: dict | None = None, layer_dropout: float = 0.0,
                       bias: bool = False, cell: str = "nas-rnn"):
        """The word-level language model around the cell of ``arch``
        (:class:`torchnas.nn.lm.LanguageModel`: embedding size = hidden size, tied softmax):
        ``num_layers`` cells stacked (Zoph & Le's children have two), ``layer_dropout`` the
        variational dropout between them. ``cell="lstm"`` stacks plain LSTM cells instead (the
        baseline; ``arch`` is then ignored)."""
        from ..nn.lm import LanguageModel, LSTMCell, StackedCells
        if cell not in (self.name, "lstm"):
            raise ValueError(f"language-model cell must be {self.name!r} (the searched cell) or 'lstm', not {cell!r}")
        if arch is None and cell == self.name:
            raise ArchitectureError("nas-rnn children are trained from scratch (Zoph & Le): give an architecture")
        if num_layers < 1:
            raise ValueError(f"a nas-rnn language model needs num_layers >= 1, got {num_layers}")
        if cell == "lstm":
            cells = [LSTMCell(hidden_size, hidden_size, init_range) for _ in range(num_layers)]
        else:
            cells = [self.child(arch, hidden_size, hidden_size, init_range, bias) for _ in range(num_layers)]
        rnn = cells[0] if num_layers == 1 else StackedCells(cells, between=layer_dropout)
        return LanguageModel(rnn, vocab_size, dropout=dropout, init_range=init_range)

    def parameter_arithmetic(self, vocab_size: int, net: dict) -> tuple[int, str]:
        """The language model's parameter count as a sum a reader can check (``--dry-run``)."""
        H, L, bias = net.get("hidden_size", 200), net.get("num_layers", 2), bool(net.get("bias", False))
        if net.get("cell") == "lstm":
            total = vocab_size * H + L * 4 * H * (2 * H + 1)
            return total, (f"{vocab_size:,} x {H:,} (the embedding, tied to the softmax) + {L} LSTM layers x 4 gates "
                           f"x {H:,} x ({H:,} + {H:,} + 1 bias) = {total:,}")
        per_layer = self.base * H * (2 * H + bias)
        total = vocab_size * H + L * per_layer
        b = f" + {H:,} bias" if bias else ""
        return total, (f"{vocab_size:,} x {H:,} (the embedding, tied to the softmax) + {L} layers x {self.base} leaves "
                       f"x {H:,} x ({H:,} + {H:,}{b}) (each leaf's W x and W h) = {total:,}")

    def graph(self, arch, **options) -> Graph:
        """The tree as in Zoph & Le's Fig. 5: leaves fed by x[t] and h[t-1], each node labelled
        with its index, combination and activation; c[t-1] enters the inject node (dashed),
        c[t] leaves its node, h[t] is the root."""
        t = self.tree(arch)
        g = Graph(f"NAS recurrent cell (base {t.base})", [Node("x", "x[t]", "input"), Node("h_prev", "h[t-1]", "input"),
                                                           Node("c_prev", "c[t-1]", "input")], [], direction="BT")
        out = lambda k: "inject" if k == t.inject_index else f"n{k}"       # a node's output as its parent sees it
        for i, (comb, act) in enumerate(t.nodes):
            g.nodes.append(Node(f"n{i}", f"{i}: {act}({_SYMBOL[comb]})"))
            srcs = ("x", "h_prev") if i < t.base else tuple(out(k) for k in t.inputs[i])
            g.edges += [Edge(s, f"n{i}") for s in srcs]
        g.nodes.append(Node("inject", f"inject: {t.inject[1]}({_SYMBOL[t.inject[0]]})", "op"))
        g.edges += [Edge(f"n{t.inject_index}", "inject"), Edge("c_prev", "inject", style="dashed")]
        g.nodes += [Node("c", "c[t]", "output"), Node("h", "h[t]", "output")]
        g.edges += [Edge(f"n{t.cell_index}", "c", "before its activation", style="dashed"), Edge(out(t.root), "h")]
        return g

    def config(self) -> dict:
        return {"name": self.name, "base": self.base, "combinations": list(self.combinations),
                "activations": list(self.activations)}


def parameter_count(base: int, input_size: int, hidden_size: int, bias: bool = False) -> int:
    """A cell's weights: ``base`` leaf pairs, ``W x`` and ``W h`` per leaf (plus one bias)."""
    return base * hidden_size * (input_size + hidden_size + int(bias))


__all__ = ["NASRNNSpace", "NASRNNCell", "Tree", "step", "NAS_CELL", "COMBINATIONS", "ACTIVATIONS",
           "parameter_count", "describe"]
