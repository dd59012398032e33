"""A word-level language model around a recurrent cell (Pham et al. 2018 §2.2; the layout and
regularisers of google-research ``enas_lm/src/child.py`` and ``fixed_lib.py``).

``tokens (L, B)`` -> embedding ``E`` (``[V, H]``, uniform ±``init_range``) -> the cell, one
time step at a time -> logits ``s_t @ E^T`` (the softmax is tied to the embedding and has no
bias, as in the reference). The cell's output is also its next state (ENAS cells); a cell may
keep a separate state (the plain LSTM baseline).

Dropouts (rates, not keep probabilities), each mask drawn once per forward call (= once per
BPTT window, the reference's ``sess.run``) and rescaled by ``1 / (1 - p)``:

* ``word``: whole rows of ``E`` for the input lookup (the softmax uses the undropped ``E``);
* ``embedding``: the looked-up vectors, one ``[B, H]`` mask for every time step;
* ``input``: ``x_t`` inside the cell's first node (``input_mask`` in the reference);
* ``hidden``: ``h_{t-1}`` and every node's input (``layer_mask``; variational: one mask for
  all time steps and nodes);
* ``output``: the cell outputs before the softmax, one mask for every time step.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

DROPOUTS = ("word", "embedding", "input", "hidden", "output")


def _mask(shape, p: float, like: torch.Tensor) -> torch.Tensor | None:
    if p <= 0:
        return None
    return torch.empty(shape, dtype=like.dtype, device=like.device).bernoulli_(1 - p) / (1 - p)


def check_dropout(dropout: dict | None) -> dict:
    d = {k: 0.0 for k in DROPOUTS}
    if dropout is not None and not isinstance(dropout, dict):
        raise ValueError(f"dropout = {dropout!r}: must be a section of rates ({', '.join(DROPOUTS)}) or null")
    for k, v in (dropout or {}).items():
        if k not in d:
            raise ValueError(f"unknown dropout {k!r}; the language model has {', '.join(DROPOUTS)}")
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v < 1:
            raise ValueError(f"dropout {k} must be a rate in [0, 1), got {v!r}")
        d[k] = float(v)
    return d


class MemoryCell(nn.Module):
    """A standalone cell with a memory state beside its output, state ``(h, c)``: the interface
    of the ENAS cells (``project_inputs(x)`` then ``run(xp, state, plan, h_mask) -> (outputs,
    (h_t, c_t))``, one ``recur`` a step), for cells that are not searched with shared weights."""

    def init_state(self, batch_size: int, like: torch.Tensor):
        z = like.new_zeros(batch_size, self.hidden_size)
        return z, z

    def plan(self, arch=None):
        return None

    def run(self, xp, state, plan=None, h_mask=None):
        outs = []
        for xp_t in xp.unbind(0):
            out, state = self.recur(xp_t, state, plan, h_mask)
            outs.append(out)
        return torch.stack(outs), state


class LSTMCell(MemoryCell):
    """A plain LSTM cell, for baselines."""

    def __init__(self, input_size: int, hidden_size: int, init_range: float = 0.04):
        super().__init__()
        self.input_size, self.hidden_size = input_size, hidden_size
        self.w_ih = nn.Parameter(torch.empty(input_size, 4 * hidden_size).uniform_(-init_range, init_range))
        self.w_hh = nn.Parameter(torch.empty(hidden_size, 4 * hidden_size).uniform_(-init_range, init_range))
        self.bias = nn.Parameter(torch.zeros(4 * hidden_size))

    def project_inputs(self, x: torch.Tensor, x_mask: torch.Tensor | None = None) -> torch.Tensor:
        return (x if x_mask is None else x * x_mask) @ self.w_ih + self.bias

    def recur(self, xp_t, state, plan=None, h_mask=None):
        h, c = state
        i, f, g, o = (xp_t + (h if h_mask is None else h * h_mask) @ self.w_hh).chunk(4, -1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        return h, (h, c)

    def export_source(self, prefix: str = "self.cell", layer: int = 0, first: int = 0) -> dict:
        """This cell's code in a standalone python file (``torchnas.export``; the layout of
        ``NASRNNCell.export_source``): parameters under ``prefix``, a loop over the window that
        reads layer ``layer``'s input and state ``state[first], state[first + 1]`` and leaves its
        outputs in ``y{layer}``."""
        H, k = self.hidden_size, layer
        init = [f"{prefix}.w_ih = nn.Parameter(torch.zeros({self.input_size}, {4 * H}))",
                f"{prefix}.w_hh = nn.Parameter(torch.zeros({H}, {4 * H}))",
                f"{prefix}.bias = nn.Parameter(torch.zeros({4 * H}))"]
        inp = "E[tokens]" if k == 0 else f"y{k - 1}"
        body = [f"h{k}, c{k} = state[{first}], state[{first + 1}]", f"xp = {inp} @ {prefix}.w_ih + {prefix}.bias",
                f"outs{k}: List[torch.Tensor] = []", "for t in range(tokens.shape[0]):",
                f"    i, f, g, o = (xp[t] + h{k} @ {prefix}.w_hh).chunk(4, -1)",
                f"    c{k} = torch.sigmoid(f) * c{k} + torch.sigmoid(i) * torch.tanh(g)",
                f"    h{k} = torch.sigmoid(o) * torch.tanh(c{k})", f"    outs{k}.append(h{k})",
                f"y{k} = torch.stack(outs{k})"]
        return {"init": init, "states": 2, "body": body, "out": f"y{k}", "last": [f"h{k}", f"c{k}"],
                "what": "LSTM cell"}


class _TiedCrossEntropy(torch.autograd.Function):
    """Cross-entropy summed over rows of the logits ``top @ E^T``, made ``chunk`` rows at a time
    so the ``[N, V]`` logits never exist whole. With gradients on, each chunk's gradients
    (``softmax - onehot`` back through the product) are made at once in the forward pass and
    only scaled in the backward pass, so nothing is recomputed (issue 15: the 10,000-word
    softmax's temporaries were a third of a step's memory)."""

    @staticmethod
    def forward(ctx, top, E, targets, chunk: int, grads: bool):
        d_top = torch.empty_like(top) if grads and ctx.needs_input_grad[0] else None
        d_E = torch.zeros_like(E) if grads and ctx.needs_input_grad[1] else None
        from ..training.device import wide_dtype          # (a module-level import would be circular)
        wide = wide_dtype(top.device)
        total = top.new_zeros((), dtype=wide)
        for i in range(0, len(top), chunk):
            t, y = top[i:i + chunk], targets[i:i + chunk, None]
            z = t @ E.t()
            lse = torch.logsumexp(z, 1, keepdim=True)
            total += (lse - z.gather(1, y)).sum(dtype=wide)
            if d_top is None and d_E is None:
                continue
            p = z.sub_(lse).exp_()                              # softmax, in place
            p.scatter_add_(1, y, torch.full_like(y, -1, dtype=p.dtype))
            if d_top is not None:
                torch.mm(p, E, out=d_top[i:i + chunk])
            if d_E is not None:
                d_E.addmm_(p.t(), t)
        ctx.save_for_backward(d_top, d_E)
        ctx.consumed = False
        return total.to(top.dtype)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g):
        if ctx.consumed:
            raise RuntimeError("the tied cross-entropy: a second backward pass through the same graph is not "
                               "supported (the first one scaled its gradients in place)")
        ctx.consumed = True
        d_top, d_E = ctx.saved_tensors          # scaled in place: a copy of d_E was 40 MB at the peer's size
        return (None if d_top is None else d_top.mul_(g), None if d_E is None else d_E.mul_(g), None, None, None)


def tied_cross_entropy(top: torch.Tensor, E: torch.Tensor, targets: torch.Tensor, reduction: str = "mean",
                       chunk: int = 512) -> torch.Tensor:
    """``F.cross_entropy(top @ E.t(), targets, reduction=...)`` for ``top`` ``[N, H]``, tied
    embedding ``E`` ``[V, H]`` and ``targets`` ``[N]``, without the ``[N, V]`` logits."""
    s = _TiedCrossEntropy.apply(top, E, targets, chunk, torch.is_grad_enabled())
    return s / len(top) if reduction == "mean" else s


@dataclass
class LMOutput:
    top: torch.Tensor        # (L, B, H) cell outputs after output dropout: the softmax's input
    embedding: torch.Tensor  # (V, H) the tied softmax weights
    state: object            # the cell state after the last step (detach it between windows)
    outputs: torch.Tensor    # (L, B, H) cell outputs before output dropout (for alpha / beta terms)

    @property
    def logits(self) -> torch.Tensor:
        """(L, B, V), made when asked for."""
        return self.top @ self.embedding.t()

    def cross_entropy(self, targets: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
        """Cross-entropy of the next-word targets ``(L, B)`` (``tied_cross_entropy``)."""
        return tied_cross_entropy(self.top.flatten(0, 1), self.embedding, targets.reshape(-1), reduction)


class StackedCells(nn.Module):
    """Cells one above the other (Zaremba et al. 2014's two-layer models; Zoph & Le §4.2 train
    such children): layer l's outputs are layer l + 1's inputs, with a variational dropout mask
    (rate ``between``, drawn once a window) on each connection between layers. The state is the
    layers' states one after the other, flat: ``(h_1, c_1, h_2, c_2, ...)`` for memory cells."""

    def __init__(self, cells: list[nn.Module], between: float = 0.0):
        super().__init__()
        if not 0 <= between < 1:
            raise ValueError(f"dropout between layers must be a rate in [0, 1), got {between!r}")
        self.cells, self.between = nn.ModuleList(cells), between
        self.input_size, self.hidden_size = cells[0].input_size, cells[-1].hidden_size
        probe = (c.init_state(1, torch.zeros(1)) for c in cells)
        self._sizes = [len(s) if isinstance(s, tuple) else 1 for s in probe]     # state tensors per layer

    def init_state(self, batch_size: int, like: torch.Tensor):
        states = (c.init_state(batch_size, like) for c in self.cells)
        return tuple(t for s in states for t in (s if isinstance(s, tuple) else (s,)))

    def plan(self, arch=None):
        return None

    def project_inputs(self, x: torch.Tensor, x_mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.cells[0].project_inputs(x, x_mask)

    def run(self, xp, state, plan=None, h_mask=None):
        new, k = [], 0
        for l, (cell, n) in enumerate(zip(self.cells, self._sizes)):
            s = tuple(state[k:k + n]) if n > 1 else state[k]
            k += n
            if l:
                xp = cell.project_inputs(out, _mask(out.shape[1:], self.between, out) if self.training else None)
            out, s = cell.run(xp, s, None, h_mask)
            new += list(s) if isinstance(s, tuple) else [s]
        return out, tuple(new)

    def export_source(self, prefix: str = "self.cell", layer: int = 0) -> dict:
        """Each layer's code in turn (``torchnas.export``), over the whole window."""
        parts, first = [], 0
        for l, c in enumerate(self.cells):
            parts.append(c.export_source(f"{prefix}.cells[{l}]", layer + l, first))
            first += parts[-1]["states"]
        return {"init": [line for p in parts for line in p["init"]], "states": first,
                "body": [line for p in parts for line in p["body"]], "out": parts[-1]["out"],
                "last": [n for p in parts for n in p["last"]], "what": f"{len(parts)} layers of {parts[0]['what']}"}


class LanguageModel(nn.Module):
    """Embedding, a recurrent ``cell`` (standalone, or shared: then pass ``arch``), tied softmax."""

    def __init__(self, cell: nn.Module, vocab_size: int, dropout: dict | None = None, init_range: float = 0.04):
        super().__init__()
        self.cell, self.vocab_size, self.hidden_size = cell, vocab_size, cell.hidden_size
        if cell.input_size != cell.hidden_size:
            raise ValueError("a tied language model needs the cell's input size equal to its hidden size")
        self.dropout = check_dropout(dropout)
        self.embedding = nn.Parameter(torch.empty(vocab_size, self.hidden_size).uniform_(-init_range, init_range))

    def init_state(self, batch_size: int):
        init = getattr(self.cell, "init_state", None)
        if init is not None:
            return init(batch_size, self.embedding)
        return self.embedding.new_zeros(batch_size, self.hidden_size)

    def forward(self, tokens: torch.Tensor, state=None, arch=None) -> LMOutput:
        L, B = tokens.shape
        H, d, E = self.hidden_size, self.dropout, self.embedding
        if state is None:
            state = self.init_state(B)
        x = F.embedding(tokens, E)     # (L, B, H); E[tokens] would be nondeterministic on CPU (index_put accumulate)
        if self.training:
            word = _mask((self.vocab_size,), d["word"], E)
            if word is not None:
                x = x * word[tokens].unsqueeze(-1)
            emb = _mask((B, H), d["embedding"], E)
            if emb is not None:
                x = x * emb
            x_mask, h_mask = _mask((B, H), d["input"], E), _mask((B, H), d["hidden"], E)
        else:
            x_mask = h_mask = None
        plan = self.cell.plan(arch)
        xp = self.cell.project_inputs(x, x_mask)                # all time steps in one matmul
        outputs, state = self.cell.run(xp, state, plan, h_mask)
        top = outputs
        if self.training:
            o = _mask((B, H), d["output"], E)
            if o is not None:
                top = top * o
        return LMOutput(top, E, state, outputs)


def detach_state(state):
    if isinstance(state, tuple):
        return tuple(s.detach() for s in state)
    return state.detach()


def select_state(state, index):
    """Rows ``index`` of a state (for carrying one stream's state into the tail of a split)."""
    if isinstance(state, tuple):
        return tuple(s[index] for s in state)
    return state[index]


__all__ = ["LanguageModel", "LMOutput", "LSTMCell", "MemoryCell", "StackedCells", "DROPOUTS", "check_dropout", "detach_state", "select_state"]
