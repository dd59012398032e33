"""The controller: one LSTM policy for every search space.

Zoph & Le (2017) §3.1-3.3 and Pham et al. (2018) §2: an LSTM runs over the space's controller
program (:attr:`SearchSpace.steps`); each step's decision is a softmax (or, for skip
connections, sigmoids) over its options, and the embedding of the choice made is the next
step's input. Anchor decisions score earlier anchor points with set-selection attention,

    score(j) = vᵀ tanh(W_prev h_j + W_curr h_i)                       (Zoph & Le §3.3)

turned into ``P(j feeds i) = sigmoid(score(j))`` for a subset (:class:`AnchorSet`) and a
softmax over ``j`` for one anchor (:class:`Anchor`). Logits go through the ENAS code's
``C · tanh(logits / T)`` (``temperature`` T, ``tanh_constant`` C; op decisions use
``C / op_tanh_reduce``; melodyguan/enas ``src/cifar10/*_controller.py``).

Naming follows the ENAS code: ``g_emb`` is the learned first input, ``w_emb``/``w_soft`` the
per-kind embeddings and softmax heads, ``w_attn_1``/``w_attn_2``/``v_attn`` the attention's
W_prev, W_curr and v. The LSTM input after an anchor choice is the chosen anchor's content;
after a subset it is the mean of the chosen anchors' contents, ``Σ h_j / (1 + |S|)``, as in
``general_controller.py``; after a step with nothing to embed it is ``g_emb``.
"""
from __future__ import annotations

import math
from typing import NamedTuple, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .spaces import Anchor, AnchorSet, Architecture, Choice, SearchSpace
from .settings import Count, Positive


class Sample(NamedTuple):
    """Architectures and, per architecture, Σ_t log P(a_t|a_<t), the summed entropies of the
    step distributions, and the skip penalty (mean KL of the skip probabilities to the target;
    0 for spaces without subset decisions)."""

    archs: list[Architecture]
    log_probs: torch.Tensor
    entropies: torch.Tensor
    skip_penalties: torch.Tensor


class Controller(nn.Module):
    def __init__(self, space: SearchSpace, hidden_size: Count = 64, num_layers: Count = 1,
                 init_range: Positive = 0.1, temperature: Positive | None = None,
                 tanh_constant: Positive | None = None, op_tanh_reduce: float = 1.0,
                 skip_target: float = 0.4, choice_bias: dict | None = None,
                 anchor_distance_bias: float = 0.0, anchor_input_offset: float | None = None,
                 lstm_bias: bool = True, seed: int = 0):
        super().__init__()
        if hidden_size < 1 or num_layers < 1:
            raise ValueError("controller hidden_size and num_layers must be >= 1")
        if temperature is not None and temperature <= 0:
            raise ValueError(f"controller temperature must be > 0, got {temperature}")
        if not 0 < skip_target < 1:
            raise ValueError(f"controller skip_target must be in (0, 1), got {skip_target}")
        self.space = space
        self.steps = space.steps
        self.decisions = space.decisions
        self.temperature, self.tanh_constant = temperature, tanh_constant
        self.op_tanh_reduce, self.skip_target = op_tanh_reduce, skip_target
        # enas_lm controller.py, for the recurrent cell's one-anchor decisions: after the tanh,
        # logit_j -= (n - j)^2 * anchor_distance_bias (1/6 there), favouring recent nodes; the
        # next input is h_j / (anchor_input_offset + (n - j)) (offset 0.1 there).
        if anchor_distance_bias < 0 or (anchor_input_offset is not None and anchor_input_offset <= 0):
            raise ValueError("controller anchor_distance_bias must be >= 0 and anchor_input_offset > 0")
        self.anchor_distance_bias, self.anchor_input_offset = anchor_distance_bias, anchor_input_offset
        H = hidden_size
        # lstm_bias=False: the authors' common_ops.lstm is [x, h] @ w with no bias (melodyguan/enas
        # src/common_ops.py); nn.LSTMCell's gates are the same otherwise (i, f, o sigmoid, g tanh)
        self.lstm = nn.ModuleList(nn.LSTMCell(H, H, bias=lstm_bias) for _ in range(num_layers))
        self.g_emb = nn.Parameter(torch.empty(1, H))
        kinds = space.choice_kinds()
        self.w_soft = nn.ModuleDict({k: nn.Linear(H, n, bias=False) for k, n in kinds.items()})
        self.w_emb = nn.ModuleDict({k: nn.Embedding(n, H) for k, n in kinds.items()})
        # Learned per-kind op-logit bias added before the tanh (micro_controller.py ``b_soft``,
        # initialised [10, 10, 0, 0, 0] there), kept apart from the uniform init below.
        self.choice_bias = nn.ParameterDict({k: nn.Parameter(torch.tensor(v, dtype=torch.float32))
                                             for k, v in (choice_bias or {}).items()})
        for k, b in self.choice_bias.items():
            if k not in kinds or len(b) != kinds[k]:
                raise ValueError(f"controller choice_bias[{k!r}] must give one value per option of that kind")
        self.w_attn_1 = nn.Linear(H, H, bias=False)
        self.w_attn_2 = nn.Linear(H, H, bias=False)
        self.v_attn = nn.Linear(H, 1, bias=False)
        # Uniform init: ±0.08 in Zoph & Le §4.1, ±0.1 in the ENAS code.
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for name, p in self.named_parameters():
                if not name.startswith("choice_bias."):
                    p.copy_(torch.rand(p.shape, generator=g) * 2 * init_range - init_range)

    def set_space(self, space: SearchSpace) -> None:
        """Run over another space's program with the same weights (progressive depth: the
        heads are per decision kind and the attention is shared, so a deeper space of the
        same kinds needs no new parameters)."""
        if space.choice_kinds() != self.space.choice_kinds():
            raise ValueError(f"controller heads {self.space.choice_kinds()} do not fit space {space!r}")
        self.space, self.steps, self.decisions = space, space.steps, space.decisions

    # ------------------------------------------------------------------------------------
    def _squash(self, logits: torch.Tensor, op: bool) -> torch.Tensor:
        if self.temperature is not None:
            logits = logits / self.temperature
        if self.tanh_constant is not None:
            c = self.tanh_constant / self.op_tanh_reduce if op else self.tanh_constant
            logits = c * torch.tanh(logits)
        return logits

    def _run(self, m: int, given: list[torch.Tensor] | None, generator: torch.Generator | None,
             stats: bool = True):
        """Run the program for a batch of m; sample each decision or score the given values
        (``stats=False``: sample only, without the log-probabilities, entropies and penalty).
        Long: one pass over the space's steps with the LSTM state, the anchor list and the next
        input threaded through every branch (choice, anchor, anchor set); split up, that state
        would have to travel through every piece."""
        H = self.g_emb.shape[1]
        dev = self.g_emb.device
        inp = self.g_emb.expand(m, H)
        state = [(torch.zeros(m, H, device=dev), torch.zeros(m, H, device=dev)) for _ in self.lstm]
        anchors: list[torch.Tensor] = []   # contents h_j, each (m, H)
        keys: list[torch.Tensor] = []      # W_prev h_j, each (m, H)
        log_prob = torch.zeros(m, device=dev)
        entropy = torch.zeros(m, device=dev)
        penalty, n_skip_decisions = torch.zeros(m, device=dev), 0
        values: list[torch.Tensor | None] = [None] * len(self.decisions)
        for step in self.steps:
            if step.reset_anchors:
                anchors, keys = [], []
            if step.anchor == "void":   # a zero anchor and key, no LSTM step (enas_lm node 0)
                anchors.append(torch.zeros(m, H, device=dev))
                keys.append(torch.zeros(m, H, device=dev))
                continue
            x = inp
            for layer, cell in enumerate(self.lstm):
                state[layer] = cell(x, state[layer])
                x = state[layer][0]
            h = x
            inp = self.g_emb.expand(m, H)
            if step.decision is not None:
                d = self.decisions[step.decision]
                chosen = None if given is None else given[step.decision]
                if isinstance(d, Choice):
                    logits = self.w_soft[d.kind](h)
                    if d.kind in self.choice_bias:
                        logits = logits + self.choice_bias[d.kind]
                    logits = self._squash(logits, op=True)
                    if d.bias is not None:
                        logits = logits + logits.new_tensor(d.bias)
                    chosen, lp, ent = _categorical(logits, chosen, generator, stats)
                    inp = self.w_emb[d.kind](chosen)
                elif d.num_anchors > 0:
                    n = d.num_anchors
                    if n > len(anchors):
                        raise ValueError(f"decision {d.name!r} needs {n} anchors, {len(anchors)} registered")
                    scores = self.v_attn(torch.tanh(torch.stack(keys[:n], 1) + self.w_attn_2(h)[:, None]))
                    logits = self._squash(scores.squeeze(-1), op=False)
                    content = torch.stack(anchors[:n], 1)                     # (m, n, H)
                    if isinstance(d, Anchor):
                        distance = n - torch.arange(n, device=dev, dtype=logits.dtype)     # n - j
                        if self.anchor_distance_bias:
                            logits = logits - self.anchor_distance_bias * distance ** 2
                        chosen, lp, ent = _categorical(logits, chosen, generator, stats)
                        inp = content[torch.arange(m, device=dev), chosen]
                        if self.anchor_input_offset is not None:
                            inp = inp / (self.anchor_input_offset + distance[chosen]).unsqueeze(1)
                    else:
                        chosen, lp, ent, kl = _bernoulli(logits, chosen, generator, self.skip_target, stats)
                        if stats:
                            penalty = penalty + kl
                        n_skip_decisions += 1
                        inp = (chosen.unsqueeze(1) @ content).squeeze(1) / (1 + chosen.sum(1, keepdim=True))
                else:  # an AnchorSet over no anchors: nothing to decide
                    lp = ent = None
                    chosen = torch.zeros(m, 0, device=dev)
                if lp is not None:
                    log_prob = log_prob + lp
                    entropy = entropy + ent
                values[step.decision] = chosen
            if step.anchor is not None:
                anchors.append(h if step.anchor == "h" else torch.zeros_like(h))
                keys.append(self.w_attn_1(h))
        if n_skip_decisions:
            penalty = penalty / n_skip_decisions
        return values, log_prob, entropy, penalty

    # ------------------------------------------------------------------------------------
    def sample(self, m: int = 1, generator: torch.Generator | None = None) -> Sample:
        """Sample m architectures as one batch; the returned tensors carry gradients."""
        values, lp, ent, pen = self._run(m, None, generator)
        return Sample(self._to_archs(values, m), lp, ent, pen)

    def draw(self, m: int = 1, generator: torch.Generator | None = None) -> list[Architecture]:
        """m architectures from the policy, nothing else computed: the same draws as :meth:`sample`
        from the same generator state, with fewer operations (ENAS's shared phase and derive)."""
        values, _, _, _ = self._run(m, None, generator, stats=False)
        return self._to_archs(values, m)

    def log_prob(self, archs: Sequence[Architecture]) -> Sample:
        """Score given architectures (teacher forcing); agrees with :meth:`sample`."""
        archs = [self.space.check(a) for a in archs]
        given = self._to_tensors(archs)
        _, lp, ent, pen = self._run(len(archs), given, None)
        return Sample(list(archs), lp, ent, pen)

    def _to_archs(self, values: list[torch.Tensor], m: int) -> list[Architecture]:
        cols = []
        for d, v in zip(self.decisions, values):
            v = v.tolist()
            if isinstance(d, AnchorSet):
                cols.append([tuple(j for j, bit in enumerate(row) if bit) for row in v])
            else:
                cols.append(v)
        return [Architecture(self.space.name, tuple(col[k] for col in cols), self.space) for k in range(m)]

    def _to_tensors(self, archs: Sequence[Architecture]) -> list[torch.Tensor]:
        dev = self.g_emb.device
        out = []
        for i, d in enumerate(self.decisions):
            if isinstance(d, AnchorSet):
                bits = torch.zeros(len(archs), d.num_anchors, device=dev)
                for k, a in enumerate(archs):
                    bits[k, list(a.values[i])] = 1.0
                out.append(bits)
            else:
                out.append(torch.tensor([a.values[i] for a in archs], dtype=torch.long, device=dev))
        return out


def _categorical(logits, chosen, generator, stats: bool = True):
    logp_all = F.log_softmax(logits, -1)
    if chosen is None:
        with torch.no_grad():
            chosen = torch.multinomial(logp_all.exp(), 1, generator=generator).squeeze(1)
    if not stats:
        return chosen, None, None
    lp = logp_all.gather(1, chosen[:, None]).squeeze(1)
    ent = -(logp_all.exp() * logp_all).sum(-1)
    return chosen, lp, ent


def _bernoulli(logits, chosen, generator, target, stats: bool = True):
    """Independent sigmoids per anchor (Zoph & Le §3.3). The skip penalty is the ENAS code's
    KL(p ‖ target) summed over the anchors of one decision (``general_controller.py``)."""
    p = torch.sigmoid(logits)
    if chosen is None:
        with torch.no_grad():
            chosen = torch.bernoulli(p, generator=generator)
    if not stats:
        return chosen, None, None, None
    logp1, logp0 = F.logsigmoid(logits), F.logsigmoid(-logits)
    lp = (chosen * logp1 + (1 - chosen) * logp0).sum(1)
    ent = -(p * logp1 + (1 - p) * logp0).sum(1)
    kl = (p * (logp1 - math.log(target)) + (1 - p) * (logp0 - math.log(1 - target))).sum(1)
    return chosen, lp, ent, kl
