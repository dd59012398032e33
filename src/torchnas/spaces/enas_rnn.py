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
options (``anchor_distance_bias: 1/6``, ``anchor_input_offset: 0.1``), and its bias-free LSTM
(``[x, h] @ w_lstm``) is ``lstm_bias: false`` in the ``enas-rnn`` preset. Not reproduced: the
reference ties the function softmax to the function embedding.

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


def _highway_(s: torch.Tensor, f: torch.Tensor, sp: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """``s = sp + c * (f - sp)`` written into ``s``, in ``_CellBase._step``'s order of operations
    (so the window's forward and backward remake its states bit for bit)."""
    return s.copy_(f).sub_(sp).mul_(c).add_(sp)


def _act_backward(name: str, g: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """``g * f'(a)`` from the activation's output ``f = f(a)``, as autograd's own backward
    formulas compute it (tanh and sigmoid from their outputs, relu from ``f > 0``)."""
    if name == "tanh":
        return g * (1 - f * f)
    if name == "relu":
        return g * (f > 0)
    if name == "sigmoid":
        return g * (1 - f) * f
    return g


class _CellWindow(torch.autograd.Function):
    """All ``T`` steps of a window of one cell, forward and backward by hand (issue 15).

    Forward keeps each node's product output ``Z_i[t] = [h; t]`` (one ``[T, B, 2H]`` buffer a
    node) and the outputs, nothing else: autograd step by step kept about three times that,
    spread over the heap in small blocks. Backward walks the steps in reverse; at step ``t`` it
    remakes the step's states from ``Z[t]`` and ``h_{t-1}`` (element-wise only; the window's
    states that some product reads are kept for the weight gradients), then walks the
    nodes in reverse (a node's gradient is complete once the nodes that read it are done) and
    writes each product's output gradient over ``Z_i[t]``. Each weight's gradient is then one
    product over the window, ``dW = X^T G`` with ``T x B`` rows (``X``: the product's masked
    inputs), and each ``Z_i`` is freed as soon as its gradient is made. The same outputs as
    ``_CellBase._step`` bit for bit and the same gradients up to rounding (test_enas_rnn.py)."""

    @staticmethod
    def forward(ctx, xp, h0, h_mask, cell, nodes, *ws):
        out, Z = cell._window_forward(xp, h0, h_mask, nodes, ws, keep=True)
        ctx.cell, ctx.nodes, ctx.Z = cell, nodes, Z
        ctx.save_for_backward(h0, h_mask, out, *ws)
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g_out):
        if ctx.Z is None:
            raise RuntimeError("the recurrent cell's window: a second backward pass through the same graph is not "
                               "supported (the first one consumed its buffers)")
        h0, mask, out, *ws = ctx.saved_tensors
        cell, nodes, Z = ctx.cell, ctx.nodes, ctx.Z
        ctx.cell = ctx.Z = None
        funcs = ["tanh"] + [cell.activations[a] for _, a in nodes]      # node 0's is fixed
        T, B, H = out.shape
        ids, n_out = cell._output_index(nodes, out.device)
        prevs = sorted({p for p, _ in nodes})           # the states some product reads
        row = {p: i for i, p in enumerate(prevs)}
        S = out.new_empty(T, len(prevs), B, H)          # those states, remade step by step
        scratch = out.new_empty(len(nodes) + 1, B, H)   # a step's others (read by the output only)
        DS = g_out.new_empty(len(nodes) + 1, B, H)
        dh = torch.zeros_like(h0)                     # d loss / d h_t through step t + 1
        for t in reversed(range(T)):
            hp = h0 if t == 0 else out[t - 1]
            cs, fs = [], []                           # the forward's gates and activations, remade
            for k in range(len(nodes) + 1):
                z = Z[k][t]
                c = torch.sigmoid(z[:, H:])
                f = _FUNCS[funcs[k]](z[:, :H])
                sp = hp if k == 0 else S[t, row[nodes[k - 1][0]]]
                _highway_(S[t, row[k]] if k in row else scratch[k], f, sp, c)
                cs.append(c)
                fs.append(f)
            DS.zero_()
            DS[ids] = (g_out[t] + dh) / n_out             # the output is the mean of nodes ids
            for k in range(len(nodes), -1, -1):
                z, ds, c, f = Z[k][t], DS[k], cs[k], fs[k]
                sp = hp if k == 0 else S[t, row[nodes[k - 1][0]]]
                dfs = ds * c                              # s_k = s_p + c * (f - s_p)
                dt = ds * (f - sp) * (1 - c) * c
                z[:, :H] = _act_backward(funcs[k], dfs, f)
                z[:, H:] = dt
                g_in = z @ ws[k].t()
                if mask is not None:
                    g_in = g_in * mask
                if k == 0:
                    dh = ds - dfs + g_in
                else:
                    DS[nodes[k - 1][0]] += ds - dfs + g_in
        del cs, fs, c, f, z                 # views of the buffers (identity's f): each is freed below
        X = torch.cat([h0[None], out[:-1]])
        grads = [(X if mask is None else X * mask).flatten(0, 1).t() @ Z[0].flatten(0, 1)]
        del X
        for k, (p, _) in enumerate(nodes, 1):
            X = S[:, row[p]] if mask is None else S[:, row[p]] * mask
            grads.append(X.reshape(T * B, H).t() @ Z[k].flatten(0, 1))
            Z[k] = None                                # freed as soon as its gradient is made
        return (Z[0], dh if ctx.needs_input_grad[1] else None, None, None, None, *grads)


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
        ``(outputs [L, B, H], last state)``. With gradients on, one autograd node for the
        window (``_CellWindow``); without, the same arithmetic in buffers of one step."""
        nodes, weights = plan
        ws = [self.w_prev[self.input_size:], *weights]
        if torch.is_grad_enabled() and (xp.requires_grad or h.requires_grad or any(w.requires_grad for w in ws)):
            out = _CellWindow.apply(xp, h, h_mask, self, tuple(nodes), *ws)
        else:
            out = self._window_forward(xp, h, h_mask, nodes, ws, keep=False)[0]
        return out, out[-1]

    def _output_index(self, nodes, device) -> tuple[slice | torch.Tensor, int]:
        """The nodes whose mean is the output, as an index into a step's states (a slice for
        ``average``, a tensor on ``device`` for the loose ends), and how many there are."""
        if self.output == "average":
            return slice(1, None), len(nodes)
        ids = loose_ends(nodes)
        return torch.tensor(ids, device=device), len(ids)

    def _window_forward(self, xp, h, mask, nodes, ws, keep: bool):
        """``_step`` over the window's steps with the same arithmetic, in place: the outputs
        ``[L, B, H]`` and each node's products ``[L, B, 2H]`` (with ``keep``; else one step's,
        overwritten)."""
        T, B, H = xp.shape[0], xp.shape[1], self.hidden_size
        n = len(nodes) + 1
        S = xp.new_empty(n, B, H)                       # one step's states
        Z = [xp.new_empty(T if keep else 1, B, 2 * H) for _ in range(n)]
        out = xp.new_empty(T, B, H)
        ids, _ = self._output_index(nodes, xp.device)
        with torch.no_grad():
            for t in range(T):
                j = t if keep else 0
                z = torch.mm(h if mask is None else h * mask, ws[0], out=Z[0][j])
                z.add_(xp[t])
                _highway_(S[0], torch.tanh(z[:, :H]), h, torch.sigmoid(z[:, H:]))
                for k, (p, a) in enumerate(nodes, 1):
                    sp = S[p]
                    z = torch.mm(sp if mask is None else sp * mask, ws[k], out=Z[k][j])
                    _highway_(S[k], _FUNCS[self.activations[a]](z[:, :H]), sp, torch.sigmoid(z[:, H:]))
                torch.mean(S[ids], 0, out=out[t])
                h = out[t]
        return out, Z

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

    def export_source(self, prefix: str = "self.cell", layer: int = 0, first: int = 0) -> dict:
        """This cell's code in a standalone python file (``torchnas.export``; the layout of
        ``NASRNNCell.export_source``): parameters under ``prefix``, a loop over the window that
        reads layer ``layer``'s input and state ``state[first]`` and leaves its outputs in
        ``y{layer}``. Node 0 and each node i are ENAS eq. (1)'s highway steps, as :meth:`recur`."""
        I, H, N, k = self.input_size, self.hidden_size, len(self.nodes), layer
        act = {"tanh": "torch.tanh({})", "relu": "torch.relu({})", "sigmoid": "torch.sigmoid({})", "identity": "{}"}
        init = [f"{prefix}.w_prev = nn.Parameter(torch.zeros({I + H}, {2 * H}))",
                f"{prefix}.w = nn.ParameterList([nn.Parameter(torch.zeros({H}, {2 * H})) for _ in range({N})])"]
        inp = "E[tokens]" if k == 0 else f"y{k - 1}"
        body = [f"h{k} = state[{first}]", f"w_h{k} = {prefix}.w_prev[{I}:]"]
        body += [f"w{k}_{i} = {prefix}.w[{i - 1}]" for i in range(1, N + 1)]
        body += [f"xp = {inp} @ {prefix}.w_prev[:{I}]", f"outs{k}: List[torch.Tensor] = []",
                 "for t in range(tokens.shape[0]):"]
        step = [f"h, g = (xp[t] + h{k} @ w_h{k}).chunk(2, -1)",
                f"s0 = h{k} + torch.sigmoid(g) * (torch.tanh(h) - h{k})"]
        for i, (p, a) in enumerate(self.nodes, 1):
            f = act[self.activations[a]].format("h")
            step += [f"h, g = (s{p} @ w{k}_{i}).chunk(2, -1)", f"s{i} = s{p} + torch.sigmoid(g) * ({f} - s{p})"]
        out = range(1, N + 1) if self.output == "average" else loose_ends(self.nodes)
        step += [f"h{k} = torch.stack([{', '.join(f's{j}' for j in out)}]).mean(0)", f"outs{k}.append(h{k})"]
        body += ["    " + line for line in step] + [f"y{k} = torch.stack(outs{k})"]
        nodes = [(p, self.activations[a]) for p, a in self.nodes]
        return {"init": init, "states": 1, "stacked": False, "body": body, "out": f"y{k}", "last": [f"h{k}"],
                "what": f"ENAS cell, nodes (prev, activation) {nodes}, output {self.output}"}


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
        # drawn one matrix at a time in the layer tensor's order (the same draws: uniform_ is
        # serial on a CPU), not as the tensor and then copied: its 0.35 GB stayed in the heap
        self.w = nn.ParameterList(nn.Parameter(_init(torch.empty(hidden_size, 2 * hidden_size), init_range))
                                  for l in range(1, space.num_nodes + 1) for f in range(A) for p in range(l))

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


SEARCHED_CELL = "enas"


@register("space")
class ENASRNNSpace(SearchSpace):
    """ENAS recurrent cells: ``num_nodes`` searched nodes after the fixed node 0, each picking
    a previous node and an activation from ``activations`` (the reference's index order)."""

    name = "enas-rnn"
    searched_cell = SEARCHED_CELL     # final_net.cell's default; "lstm" and "nas" are the baselines
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
                       cell: str = SEARCHED_CELL):
        """The word-level language model around a cell (:class:`torchnas.nn.lm.LanguageModel`;
        embedding size = hidden size, tied softmax): the standalone child of ``arch``, or with
        ``arch=None`` the shared-weight model (``model(tokens, state, arch)``). ``cell="lstm"``
        puts a plain LSTM cell of the same size in place of the searched one, ``cell="nas"`` Zoph &
        Le's NAS cell (baselines; ``arch`` is then ignored)."""
        from ..nn.lm import LanguageModel, LSTMCell
        if cell == "lstm":
            rnn = LSTMCell(hidden_size, hidden_size, init_range)
        elif cell == "nas":                         # Zoph & Le's cell (TensorFlow's NASCell)
            from .nas_rnn import NAS_CELL, NASRNNSpace
            tree = NASRNNSpace()
            rnn = tree.child(tree.parse(NAS_CELL), hidden_size, hidden_size, init_range)
        elif cell != self.searched_cell:
            raise ValueError(f"language-model cell must be 'enas' (the searched cell), 'lstm' or 'nas', not {cell!r}")
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
