"""The ENAS recurrent-cell search space (Pham et al. 2018, §2.2), after the authors' corrected
code, google-research ``enas_lm`` (see ``docs/reference-settings.md``, section "ENAS recurrent
cell"; the older melodyguan/enas ``src/ptb`` code is flagged wrong by its authors).

Decisions (``enas_lm/src/controller.py``): per searched node ``i = 1..N`` the index of its
previous node (``node{i}.prev``, one of nodes ``0..i-1``; node 0 is the fixed first node) and
then its activation (``node{i}.act``, kind ``"act"``: 0 tanh, 1 relu, 2 sigmoid, 3 identity).
An arc is the flat list ``prev_1 act_1 ... prev_N act_N``; the published cell (GR README,
``--fixed_arc``) is :data:`PUBLISHED_ARC`, 8 nodes. The controller default is 9 nodes
(``controller_num_layers``); we default to 8 so the published cell parses.

Controller program (``controller.py`` ``_build_sampler``): two LSTM steps per node, the
prev-index step then the function step; node ``j >= 1`` is represented by the controller
output at its prev-index step, node 0 by a zero vector with a zero attention key. Here: a
leading ``Step(None, anchor="void")`` for node 0 (no LSTM step, zero content and key), then per
node ``Step(prev, anchor="h")`` and ``Step(act)``. The reference's distance bias
``-(i - j)² / 6`` on the prev logits and the input scaling ``1 / (0.1 + i - j)`` are controller
options (``anchor_distance_bias: 1/6``, ``anchor_input_offset: 0.1``). Not reproduced: the
reference ties the function softmax to the function embedding and its LSTM has no biases.

Cell (``enas_lm/src/child.py`` ``_rnn_fn``; one time step, no biases anywhere):

* node 0 (fixed, tanh): ``[h; t] = [x_t, h_{t-1}] @ W_prev`` (``W_prev`` is ``[I + H, 2H]``),
  ``c = sigmoid(t)``, ``s_0 = c * tanh(h) + (1 - c) * h_{t-1}``;
* node i with prev ``p`` and activation ``f``: ``[h; t] = s_p @ W_i``,
  ``s_i = c * f(h) + (1 - c) * s_p`` with ``c = sigmoid(t)``;
* output (also the next recurrent state): ``output="average"`` (default, GPU ``child.py`` and
  ``fixed_lib.py``) is the mean of ALL nodes 1..N; ``output="loose_ends"`` (the paper, and
  ``tpu/fixed_lib.py`` ``child_average_loose_ends``) is the mean of the nodes no node uses as
  its prev (node 0 is always used by node 1, and node N is always loose).

Optional variational dropout masks follow the reference: ``x_mask`` multiplies ``x_t`` in node
0 (``input_mask``), ``h_mask`` multiplies ``h_{t-1}`` in node 0 and every node's matmul input
``s_p`` (``layer_mask``, one mask for all nodes); the carry terms use the undropped states.

Shared weights (``child.py`` ``LM._build_params``): ``rnn_cell/layer_{l}/w`` has shape
``[num_functions, l, H, 2H]`` -- one fused ``[H, 2H]`` matrix per (node, prev node,
activation); only the sampled ``W_l[f, p]`` is used. Init is uniform ±``init_range`` (0.04
in search, 0.05 in the GPU final training).
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from ..registry import register
from .base import check_size_and_options, Anchor, Architecture, ArchitectureError, Choice, SearchSpace, Step
from .graph import Edge, Graph, Node as GraphNode

ENAS_RNN_ACTIVATIONS = ("tanh", "relu", "sigmoid", "identity")   # child.py _select_function order
# enas_lm README (google-research): the published cell.
PUBLISHED_ARC = "0 2 1 0 2 1 2 2 4 0 5 0 3 2 6 2"
OUTPUTS = ("average", "loose_ends")

_FUNCS = {"tanh": torch.tanh, "relu": torch.relu, "sigmoid": torch.sigmoid, "identity": lambda x: x}

Node = tuple[int, int]   # (prev index, activation index)


def loose_ends(nodes: Sequence[Node]) -> list[int]:
    """Nodes 1..N that no node uses as its prev (``tpu/fixed_lib.py``)."""
    used = {p for p, _ in nodes}
    return [i for i in range(1, len(nodes) + 1) if i not in used]


def _init(t: torch.Tensor, init_range: float) -> torch.Tensor:
    with torch.no_grad():
        return t.uniform_(-init_range, init_range)


class _WindowRows:
    """One weight's per-step products in a window: the inputs ``x_t`` (rows of ``x``, written
    in the forward pass) and the output gradients ``g_t`` (rows of ``g``, written backward;
    ``seen`` the steps that got one)."""

    def __init__(self, x: torch.Tensor, g: torch.Tensor):
        self.x, self.g, self.seen = x, g, set()

    def weight_grad(self) -> torch.Tensor:
        """``X^T G`` over the window's rows (a step that got no output gradient adds zero)."""
        for t in set(range(len(self.g))) - self.seen:
            self.g[t].zero_()
        return self.x.flatten(0, 1).t() @ self.g.flatten(0, 1)

    @staticmethod
    def window(weights, steps: int, like: torch.Tensor) -> list["_WindowRows"]:
        """Rows for equally shaped ``weights``, views of two buffers of all of them (one large
        allocation each, which the allocator returns whole rather than fragmenting its heap)."""
        (n, m), k, b = weights[0].shape, len(weights), like.shape[0]
        xs, gs = like.new_empty(k, steps, b, n), like.new_empty(k, steps, b, m)
        return [_WindowRows(x, g) for x, g in zip(xs, gs)]


class _StepProduct(torch.autograd.Function):
    """``x_t @ W`` at time step ``t``: backward returns ``x_t``'s gradient and keeps ``g_t`` for
    ``W``'s, which ``_WindowWeights`` makes once for the whole window."""

    @staticmethod
    def forward(ctx, x, w, rows: _WindowRows, t: int):
        rows.x[t] = x
        ctx.rows, ctx.t = rows, t
        ctx.save_for_backward(w)
        return x @ w

    @staticmethod
    def backward(ctx, g):
        w, = ctx.saved_tensors
        ctx.rows.g[ctx.t] = g
        ctx.rows.seen.add(ctx.t)
        return (g @ w.t() if ctx.needs_input_grad[0] else None), None, None, None


class _WindowWeights(torch.autograd.Function):
    """The window's entry, ``(xp, h0) -> copies``: every step's product depends on its outputs, so
    its backward runs after all of theirs and gives each weight its gradient as one product,
    ``dW = X^T G`` over the window's ``L x B`` rows, instead of ``L`` products of ``B`` rows and
    ``L - 1`` full-size sums (issue 15): the same gradient as autograd's up to rounding."""

    @staticmethod
    def forward(ctx, xp, h, rows, *weights):
        ctx.rows = rows
        return xp.clone(), h.clone()

    @staticmethod
    def backward(ctx, g_xp, g_h):
        grads = [r.weight_grad() for r in ctx.rows]
        ctx.rows = None
        return (g_xp, g_h, None, *grads)


class _CellBase(nn.Module):
    def __init__(self, input_size: int, hidden_size: int, activations: Sequence[str], init_range: float):
        super().__init__()
        if input_size < 1 or hidden_size < 1:
            raise ValueError("enas-rnn cells need input_size >= 1 and hidden_size >= 1")
        self.input_size, self.hidden_size = input_size, hidden_size
        self.activations = tuple(activations)
        self.w_prev = nn.Parameter(_init(torch.empty(input_size + hidden_size, 2 * hidden_size), init_range))

    # A language model runs a cell as: plan = cell.plan(arch) once per window, xp =
    # cell.project_inputs(x_seq, x_mask) for all steps in one matmul, then
    # cell.run(xp, h, plan, h_mask) -> (outputs [L, B, H], last state); forward() does one step.
    def project_inputs(self, x: torch.Tensor, x_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Node 0's input half: ``(x * x_mask) @ W_prev[:I]``, for any leading shape."""
        return (x if x_mask is None else x * x_mask) @ self.w_prev[:self.input_size]

    def recur(self, xp_t, h_prev, plan, h_mask=None):
        """One time step: ``(output, next state)`` (the same tensor for ENAS cells)."""
        nodes, weights = plan
        ws = [self.w_prev[self.input_size:], *weights]
        out = self._step(xp_t, h_prev, nodes, lambda k, x: x @ ws[k], h_mask)
        return out, out

    def run(self, xp, h, plan, h_mask=None):
        """All steps of a window, ``xp`` ``[L, B, 2H]`` from ``project_inputs``, from state ``h``:
        ``(outputs [L, B, H], last state)``. With gradients on, each weight's gradient is one
        product over the window (``_WindowWeights``)."""
        nodes, weights = plan
        ws = [self.w_prev[self.input_size:], *weights]
        if torch.is_grad_enabled() and any(w.requires_grad for w in ws):
            rows = _WindowRows.window(ws, xp.shape[0], h)
            xp, h = _WindowWeights.apply(xp, h, rows, *ws)
            product = lambda t, k, x: _StepProduct.apply(x, ws[k], rows[k], t)
        else:
            product = lambda t, k, x: x @ ws[k]
        outs = []
        for t, xp_t in enumerate(xp.unbind(0)):
            h = self._step(xp_t, h, nodes, lambda k, x: product(t, k, x), h_mask)
            outs.append(h)
        return torch.stack(outs), h

    def _step(self, xp_t, h_prev, nodes, product, h_mask):
        """Node 0 from ``x_t`` and ``h_{t-1}``, then each node from its prev (Pham et al. 2018
        §2.2): ``s + sigmoid(t) * (f(h) - s)`` with ``[h, t] = s @ W``; ``product(k, x)`` is
        ``x @ W_k`` (k = 0: ``W_prev``'s hidden half)."""
        hi = h_prev if h_mask is None else h_prev * h_mask
        h, t = (xp_t + product(0, hi)).chunk(2, -1)
        states = [h_prev + torch.sigmoid(t) * (torch.tanh(h) - h_prev)]      # node 0: fixed tanh
        for k, (p, a) in enumerate(nodes, 1):
            s = states[p]
            h, t = product(k, s if h_mask is None else s * h_mask).chunk(2, -1)
            states.append(s + torch.sigmoid(t) * (_FUNCS[self.activations[a]](h) - s))
        return self._output(states, nodes, self.output)

    @staticmethod
    def _output(states, nodes, output):
        if output == "average":
            return torch.stack(states[1:]).mean(0)
        return torch.stack([states[k] for k in loose_ends(nodes)]).mean(0)


class ENASRNNCell(_CellBase):
    """The standalone cell of one architecture: ``forward(x_t, h_prev) -> h_t`` (``[B, I]``,
    ``[B, H]`` -> ``[B, H]``). ``w_prev`` is node 0's fused ``[I + H, 2H]`` matrix, ``w[i - 1]``
    node i's ``[H, 2H]`` matrix (first half: pre-activation, second half: gate)."""

    def __init__(self, arch: Architecture | Sequence[Node], input_size: int, hidden_size: int, *,
                 output: str = "average", activations: Sequence[str] = ENAS_RNN_ACTIVATIONS,
                 init_range: float = 0.04):
        super().__init__(input_size, hidden_size, activations, init_range)
        if output not in OUTPUTS:
            raise ValueError(f"enas-rnn output must be one of {', '.join(OUTPUTS)}, not {output!r}")
        if isinstance(arch, Architecture):
            space = arch.search_space
            if not isinstance(space, ENASRNNSpace):
                raise ValueError("ENASRNNCell needs an enas-rnn architecture (or a list of (prev, act) nodes)")
            nodes = space.nodes_of(arch)
            self.activations = space.activations
        else:
            nodes = [(int(p), int(a)) for p, a in arch]
        if not nodes:
            raise ValueError("enas-rnn cell needs at least one searched node")
        for i, (p, a) in enumerate(nodes, 1):
            if not 0 <= p < i or not 0 <= a < len(self.activations):
                raise ArchitectureError(f"enas-rnn node{i}: ({p}, {a}) is not a valid (prev, act)")
        self.nodes = nodes
        self.output = output
        self.w = nn.ParameterList(nn.Parameter(_init(torch.empty(hidden_size, 2 * hidden_size), init_range))
                                  for _ in nodes)

    def plan(self, arch=None):
        return self.nodes, list(self.w)

    def forward(self, x_t: torch.Tensor, h_prev: torch.Tensor, x_mask: torch.Tensor | None = None,
                h_mask: torch.Tensor | None = None) -> torch.Tensor:
        """One time step: ``([B, I], [B, H]) -> [B, H]``."""
        return self.recur(self.project_inputs(x_t, x_mask), h_prev, self.plan(), h_mask)[0]


class ENASRNNSharedCell(_CellBase):
    """The shared cell of the search: ``forward(x_t, h_prev, arch) -> h_t``. The reference keeps
    node l's weights as one ``layer_{l}/w`` tensor ``[num_activations, l, H, 2H]``; here each of
    its ``[H, 2H]`` matrices is a parameter of its own, ``w[index(l, f, p)]`` for node l with
    prev p and activation f (initialised from the same draws as the one tensor), so a step's
    backward pass makes gradients for the sampled matrices only and the optimizer, the weight
    decay and the clipping see only those: the reference decays the weights in use (``var_s``
    in enas_lm ``child.py``) and its gradients of unused slices are zero (issue 15)."""

    def __init__(self, space: "ENASRNNSpace", input_size: int, hidden_size: int, *, output: str = "average",
                 init_range: float = 0.04):
        super().__init__(input_size, hidden_size, space.activations, init_range)
        if output not in OUTPUTS:
            raise ValueError(f"enas-rnn output must be one of {', '.join(OUTPUTS)}, not {output!r}")
        self.space, self.output, self.num_nodes = space, output, space.num_nodes
        A = self.num_activations = len(space.activations)
        matrices = []
        for l in range(1, space.num_nodes + 1):
            layer = _init(torch.empty(A, l, hidden_size, 2 * hidden_size), init_range)
            matrices += [layer[f, p].clone() for f in range(A) for p in range(l)]
            del layer
        self.w = nn.ParameterList(nn.Parameter(m) for m in matrices)

    def index(self, l: int, f: int, p: int) -> int:
        """Position in ``w`` of node ``l``'s matrix for activation ``f`` and prev node ``p``."""
        return self.num_activations * (l - 1) * l // 2 + f * l + p

    def layer(self, l: int) -> torch.Tensor:
        """Node ``l``'s matrices as the reference's ``[num_activations, l, H, 2H]`` tensor (a copy)."""
        A, H = self.num_activations, self.hidden_size
        return torch.stack([self.w[self.index(l, f, p)] for f in range(A) for p in range(l)]).view(A, l, H, 2 * H)

    def plan(self, arch):
        """The sampled path: node list and the selected ``[H, 2H]`` matrices."""
        if arch is None:
            raise ValueError("the shared enas-rnn cell needs an architecture: cell(x, h, arch)")
        nodes = self.space.nodes_of(arch)
        return nodes, [self.w[self.index(l, a, p)] for l, (p, a) in enumerate(nodes, 1)]

    def forward(self, x_t: torch.Tensor, h_prev: torch.Tensor, arch: Architecture,
                x_mask: torch.Tensor | None = None, h_mask: torch.Tensor | None = None) -> torch.Tensor:
        """One time step of ``arch``'s path through the shared weights."""
        return self.recur(self.project_inputs(x_t, x_mask), h_prev, self.plan(arch), h_mask)[0]


@register("space")
class ENASRNNSpace(SearchSpace):
    """ENAS recurrent cells: ``num_nodes`` searched nodes after the fixed node 0, each picking
    a previous node and an activation from ``activations`` (the reference's index order)."""

    name = "enas-rnn"
    task = "language-modeling"

    def __init__(self, num_nodes: int = 8, activations: Sequence[str] = ENAS_RNN_ACTIVATIONS):
        def known(a):
            if a not in _FUNCS:
                raise ValueError(f"enas-rnn: unknown activation {a!r}; use {', '.join(_FUNCS)}")
        self.num_nodes, self.activations = check_size_and_options("enas-rnn", "num_nodes", num_nodes,
                                                                  activations, known)
        activations = self.activations
        decisions, steps = [], [Step(None, anchor="void")]          # node 0: zero anchor and key, no step
        for i in range(1, num_nodes + 1):
            b = len(decisions)
            decisions += [Anchor(f"node{i}.prev", i), Choice(f"node{i}.act", activations, kind="act")]
            # prev-index step (its output is node i's anchor), then the function step
            steps += [Step(b, anchor="h"), Step(b + 1)]
        self.decisions = tuple(decisions)
        self._steps = tuple(steps)

    def graph(self, arch, rnn_output: str = "average", **options) -> Graph:
        """ENAS recurrent cell (Pham et al. 2018, Fig. 1): x[t] and h[t-1] feed the fixed tanh node
        0; node i applies its activation to its prev node; h[t] averages all nodes 1..N (the
        reference code) or, with ``rnn_output="loose_ends"``, the nodes no node uses (the paper)."""
        nodes = self.nodes_of(arch)
        g = Graph(f"ENAS recurrent cell, h[t] = {rnn_output.replace('_', ' ')}",
                  [GraphNode("x", "x[t]", "input"), GraphNode("h_prev", "h[t-1]", "input"),
                   GraphNode("n0", "0: tanh")],
                  [Edge("x", "n0"), Edge("h_prev", "n0")], direction="BT")     # drawn upwards, as Fig. 1
        for i, (p, a) in enumerate(nodes, 1):
            g.nodes.append(GraphNode(f"n{i}", f"{i}: {self.activations[a]}"))
            g.edges.append(Edge(f"n{p}", f"n{i}"))
        g.nodes.append(GraphNode("h", "h[t]\n" + ("average" if rnn_output == "average" else "avg of loose ends"), "output"))
        outs = range(1, len(nodes) + 1) if rnn_output == "average" else loose_ends(nodes)
        g.edges += [Edge(f"n{k}", "h") for k in outs]
        return g

    def config(self) -> dict:
        return {"name": self.name, "num_nodes": self.num_nodes, "activations": list(self.activations)}

    # -- arcs ----------------------------------------------------------------------------------
    def nodes_of(self, arch: Architecture) -> list[Node]:
        v = self.check(arch).values
        return [(v[k], v[k + 1]) for k in range(0, len(v), 2)]

    def to_arc(self, arch: Architecture) -> str:
        """The reference arc: ``prev_1 act_1 ... prev_N act_N``."""
        return " ".join(map(str, self.check(arch).values))

    def _allowed(self, d) -> str:
        if isinstance(d, Anchor):
            return f"a previous-node index 0..{d.num_anchors - 1}"
        return "an activation index 0..%d (%s)" % (
            len(self.activations) - 1, ", ".join(f"{k}={a}" for k, a in enumerate(self.activations)))

    def from_arc(self, text: str) -> Architecture:
        """Parse a reference arc (space-separated integers). An invalid value raises
        :class:`ArchitectureError` naming the decision (``node3.prev``) and the allowed values."""
        tokens = str(text).split()
        if len(tokens) != 2 * self.num_nodes:
            raise ArchitectureError(
                f"enas-rnn arc has {len(tokens)} integers; expected {2 * self.num_nodes} "
                f"({self.num_nodes} nodes x 'prev act')")
        values = []
        for d, tok in zip(self.decisions, tokens):
            try:
                v = int(tok)
            except ValueError:
                raise ArchitectureError(f"decision {d.name!r}: {tok!r} is not an integer ({self._allowed(d)})") from None
            if not 0 <= v < d.num_values():
                raise ArchitectureError(f"decision {d.name!r}: {v} is not {self._allowed(d)}")
            values.append(v)
        return self.make(values)

    def parse_arc(self, body: str) -> Architecture:
        return self.from_arc(body)

    # -- networks ------------------------------------------------------------------------------
    def child(self, arch: Architecture, input_size: int, hidden_size: int, output: str = "average",
              init_range: float = 0.04) -> ENASRNNCell:
        """The standalone cell of ``arch`` (``output``: ``"average"`` or ``"loose_ends"``)."""
        return ENASRNNCell(self.nodes_of(arch), input_size, hidden_size, output=output,
                           activations=self.activations, init_range=init_range)

    def shared(self, input_size: int, hidden_size: int, output: str = "average",
               init_range: float = 0.04) -> ENASRNNSharedCell:
        """The shared cell; ``forward(x_t, h_prev, arch)`` runs only the sampled path."""
        return ENASRNNSharedCell(self, input_size, hidden_size, output=output, init_range=init_range)

    def language_model(self, arch: Architecture | None, vocab_size: int, hidden_size: int = 200, *,
                       output: str = "average", init_range: float = 0.04, dropout: dict | None = None,
                       cell: str = "enas"):
        """The word-level language model around a cell (:class:`torchnas.nn.lm.LanguageModel`;
        embedding size = hidden size, tied softmax): the standalone child of ``arch``, or with
        ``arch=None`` the shared-weight model (``model(tokens, state, arch)``). ``cell="lstm"``
        puts a plain LSTM cell of the same size in place of the searched one (a baseline;
        ``arch`` is then ignored)."""
        from ..nn.lm import LanguageModel, LSTMCell
        if cell == "lstm":
            rnn = LSTMCell(hidden_size, hidden_size, init_range)
        elif cell != "enas":
            raise ValueError(f"language-model cell must be 'enas' (the searched cell) or 'lstm', not {cell!r}")
        elif arch is None:
            rnn = self.shared(hidden_size, hidden_size, output=output, init_range=init_range)
        else:
            rnn = self.child(arch, hidden_size, hidden_size, output=output, init_range=init_range)
        return LanguageModel(rnn, vocab_size, dropout=dropout, init_range=init_range)

    def child_from_shared(self, shared_cell: ENASRNNSharedCell, arch: Architecture) -> ENASRNNCell:
        """A standalone cell with the sampled shared matrices copied in; it computes
        ``shared_cell(x, h, arch)``."""
        if shared_cell.space.num_nodes != self.num_nodes or shared_cell.activations != self.activations:
            raise ValueError("the shared cell was built for another enas-rnn space")
        nodes = self.nodes_of(arch)
        cell = ENASRNNCell(nodes, shared_cell.input_size, shared_cell.hidden_size, output=shared_cell.output,
                           activations=self.activations)
        p = shared_cell.w_prev
        cell.to(device=p.device, dtype=p.dtype)
        with torch.no_grad():
            cell.w_prev.copy_(shared_cell.w_prev)
            for l, (prev, act) in enumerate(nodes, 1):
                cell.w[l - 1].copy_(shared_cell.w[shared_cell.index(l, act, prev)])
        return cell


__all__ = ["ENASRNNSpace", "ENASRNNCell", "ENASRNNSharedCell", "ENAS_RNN_ACTIVATIONS", "PUBLISHED_ARC",
           "loose_ends"]
