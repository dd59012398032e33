"""Train and evaluate word-level language models (the ENAS recurrent cell on Penn Treebank).

Training follows google-research ``enas_lm`` (``child.py`` in search, ``fixed_lib.py`` for the
final model; the values are in the presets and ``docs/reference-settings.md``):

* plain SGD, learning rate ``lr`` (20) scaled per step by ``seq_len / bptt``, no decay;
* BPTT windows of random length around ``bptt`` (35; ``data.ptb.bptt_windows``: ``bptt_sampler``
  ``enas-lm`` draws the reference's truncated normal, ``awd-lstm`` AWD-LSTM's normal), the hidden
  state carried from window to window and reset at the start of each epoch;
* loss = cross-entropy + ``alpha`` · mean(s²) (activation regularisation, 0.7 in the final
  model) + ``beta`` · mean((s_t − s_{t−1})²) (slowness, 1.0 in search) on the cell outputs
  ``s`` before output dropout, + ``weight_decay`` · Σw² over all weights (the final model's
  form; the search code's ½Σw⁴ over a subset is a flagged bug, enas_lm issue #67: we use Σw²
  in both), gradient-norm clipping at ``grad_clip`` (0.1 search, 0.25 final);
* ``average: nt-asgd``: once the validation perplexity is worse than the best of all epochs
  but the last ``nonmono`` (10), a uniform running average of the weights after each training
  step from the next one on is kept and used for evaluation (``fixed.py``, ``fixed_lib.py``;
  Merity et al. 2018).

:func:`perplexity` is exact: it predicts every token of the split after the first exactly
once, in evaluation mode, with the hidden state carried across windows. With batch size B the
split is cut into B contiguous streams (each starts from a zero state) and the tokens left
over continue the last stream with its state; with B = 1 it is the fully sequential
evaluation the reference uses for the test set.
"""
from __future__ import annotations

import math
import time

import torch

from ..data.ptb import BPTTSampler, batchify, bptt_windows, check_bptt_sampler
from ..nn.lm import detach_state, select_state
from . import progress
from .device import Precision, StepLosses, autocast, default_device, precision_of, wide_dtype
from .state import load_training_state, training_state
from ..settings import Count, NonNegative, Positive

AVERAGING = (None, "nt-asgd")


@torch.no_grad()
def perplexity(model, stream: torch.Tensor, batch_size: int = 1, bptt: int = 35, arch=None) -> dict:
    """``{"loss", "ppl", "tokens"}`` of ``model`` on a token stream (see the module docstring)."""
    was_training = model.training
    model.eval()
    dev = model.embedding.device
    stream = stream.to(dev)
    n_targets = len(stream) - 1
    B = max(1, min(batch_size, n_targets))
    n = n_targets // B
    inp = stream[:n * B].view(B, n).t()
    tgt = stream[1:n * B + 1].view(B, n).t()
    wide = wide_dtype(dev)
    total, state = torch.zeros((), dtype=wide, device=dev), model.init_state(B)       # read once, at the end
    for i in range(0, n, bptt):
        out = model(inp[i:i + bptt], state, arch)
        state = out.state
        total += out.cross_entropy(tgt[i:i + bptt], reduction="sum").to(wide)
    if n * B < n_targets:          # the tail continues the last stream
        state = select_state(state, slice(B - 1, B))
        rest_in, rest_tgt = stream[n * B:n_targets].view(-1, 1), stream[n * B + 1:].view(-1, 1)
        for i in range(0, len(rest_in), bptt):
            out = model(rest_in[i:i + bptt], state, arch)
            state = out.state
            total += out.cross_entropy(rest_tgt[i:i + bptt], reduction="sum").to(wide)
    model.train(was_training)
    loss = total.item() / n_targets
    return {"loss": loss, "ppl": math.exp(min(loss, 700.0)), "tokens": n_targets}


class LMTraining:
    """SGD training of a language model, an epoch at a time, with a checkpointable state;
    used for the shared weights in the ENAS search (``arch_fn`` samples a cell per window)
    and for retraining a cell (``torchnas train``)."""

    def __init__(self, model, corpus, epochs: Count = 1, batch_size: Count = 64, bptt: Count = 35,
                 variable_bptt: bool = True, bptt_sampler: BPTTSampler = "awd-lstm", lr: Positive = 20.0,
                 grad_clip: Positive | None = 0.25,
                 weight_decay: NonNegative = 0.0, alpha: NonNegative = 0.0, beta: NonNegative = 0.0, average: str | None = None,
                 nonmono: Count = 10, eval_batch_size: Count = 64, test_batch_size: Count = 1,
                 max_batches: Count | None = None, seed: int = 0, precision: Precision = "auto",
                 device: str | None = "auto"):
        if epochs < 1 or batch_size < 1 or bptt < 1 or lr <= 0:
            raise ValueError(f"language-model training needs epochs >= 1, batch_size >= 1, bptt >= 1 and lr > 0 "
                             f"(got {epochs}, {batch_size}, {bptt}, {lr})")
        if average not in AVERAGING:
            raise ValueError(f"average must be 'nt-asgd' or null, not {average!r}")
        if min(weight_decay, alpha, beta) < 0 or nonmono < 1:
            raise ValueError("weight_decay, alpha and beta must be >= 0 and nonmono >= 1")
        self.device = default_device(device)
        self.precision = precision_of(precision, self.device)
        self.model = model.to(self.device)
        self.corpus, self.epochs, self.batch_size, self.bptt = corpus, epochs, batch_size, bptt
        check_bptt_sampler(bptt_sampler)
        self.variable_bptt, self.bptt_sampler, self.lr, self.grad_clip = variable_bptt, bptt_sampler, lr, grad_clip
        self.weight_decay, self.alpha, self.beta = weight_decay, alpha, beta
        self.average, self.nonmono = average, nonmono
        self.eval_batch_size, self.test_batch_size, self.max_batches = eval_batch_size, test_batch_size, max_batches
        self.train_data = batchify(corpus.train, batch_size).to(self.device)
        self.opt = torch.optim.SGD(model.parameters(), lr=lr, foreach=True)    # one batched update
        self.generator = torch.Generator().manual_seed(seed)
        self.epoch = self.step = 0
        self.valid_history: list[float] = []
        self.avg: list[torch.Tensor] | None = None
        self.avg_steps = 0

    def loss(self, out, targets) -> tuple[torch.Tensor, torch.Tensor]:
        """(training loss with the regularisers, plain cross-entropy)."""
        ce = out.cross_entropy(targets)
        loss = ce
        if self.alpha:
            loss = loss + self.alpha * out.outputs.pow(2).mean()
        if self.beta and len(out.outputs) > 1:
            loss = loss + self.beta * (out.outputs[1:] - out.outputs[:-1]).pow(2).mean()
        return loss, ce

    def train_epoch(self, arch_fn=None) -> dict:
        """One pass over the training stream; ``arch_fn()`` gives the cell of each window (shared
        weights). Returns mean cross-entropy, train perplexity, tokens, tokens/s, or ``diverged``."""
        self.model.train()
        state = self.model.init_state(self.batch_size)
        losses, tokens, windows, t0 = StepLosses(), 0, 0, time.perf_counter()
        params = [p for p in self.model.parameters() if p.requires_grad]
        expected = -(-(len(self.train_data) - 1) // self.bptt)        # windows at the mean BPTT length
        if self.max_batches is not None:
            expected = min(expected, self.max_batches)
        for x, y in bptt_windows(self.train_data, self.bptt, self.variable_bptt, self.generator,
                                 self.bptt_sampler):
            if self.max_batches is not None and windows >= self.max_batches:
                break
            for g in self.opt.param_groups:
                g["lr"] = self.lr * len(x) / self.bptt
            self.opt.zero_grad(set_to_none=True)      # before the forward pass: the last step's gradients are freed
            with autocast(self.device, self.precision):
                out = self.model(x, state, arch_fn() if arch_fn is not None else None)
                loss, ce = self.loss(out, y)
            state = detach_state(out.state)
            loss.backward()
            if self.weight_decay:       # d/dw of weight_decay * sum(w^2), before clipping as in the reference
                for p in params:
                    if p.grad is not None:
                        p.grad.add_(p.detach(), alpha=2 * self.weight_decay)
            if self.grad_clip:
                torch.nn.utils.clip_grad_norm_(params, self.grad_clip, foreach=True)
            self.opt.step()
            if self.avg is not None:
                self.avg_steps += 1
                with torch.no_grad():
                    for a, p in zip(self.avg, params):
                        a.add_(p.detach() - a, alpha=1.0 / self.avg_steps)
            bad = losses.add(ce, y.numel(), (self.epoch + 1, self.step + 1), check=loss)   # read every READ_EVERY steps
            if bad:
                return {"diverged": bad}
            tokens += y.numel()
            windows += 1
            self.step += 1
            progress.step(windows, expected, tokens, "tok", time.perf_counter() - t0)
        bad = losses.read()
        if bad:
            return {"diverged": bad}
        self.epoch += 1
        seconds = time.perf_counter() - t0
        loss = losses.total / max(tokens, 1)
        return {"loss": loss, "train_ppl": math.exp(min(loss, 700.0)), "tokens": tokens, "seconds": seconds,
                "tokens_per_s": tokens / max(seconds, 1e-9), "lr": self.lr}

    def end_epoch(self, valid_ppl: float) -> bool:
        """NT-ASGD's trigger (``average: nt-asgd``); returns whether averaging is on."""
        if (self.average == "nt-asgd" and self.avg is None and len(self.valid_history) > self.nonmono
                and valid_ppl > min(self.valid_history[:-self.nonmono])):
            # fixed.py: the average is updated after each training step from the next one on, so
            # the weights at the trigger are not in it (until the first step it equals them)
            self.avg = [p.detach().clone() for p in self.model.parameters() if p.requires_grad]
            self.avg_steps = 0
        self.valid_history.append(valid_ppl)
        return self.avg is not None

    def swap_average(self):
        if self.avg is not None:
            with torch.no_grad():
                for a, p in zip(self.avg, [p for p in self.model.parameters() if p.requires_grad]):
                    tmp = p.detach().clone()
                    p.copy_(a)
                    a.copy_(tmp)

    def evaluate(self, split: str = "valid", arch=None, batch_size: int | None = None) -> dict:
        """Exact perplexity on ``split`` (with the averaged weights once averaging started)."""
        stream = getattr(self.corpus, split)
        if batch_size is None:
            batch_size = self.test_batch_size if split == "test" else self.eval_batch_size
        self.swap_average()
        try:
            with autocast(self.device, self.precision):
                return perplexity(self.model, stream, batch_size, self.bptt, arch)
        finally:
            self.swap_average()

    def state_dict(self) -> dict:
        return {**training_state(self), "valid_history": list(self.valid_history), "avg": self.avg,
                "avg_steps": self.avg_steps}

    def load_state_dict(self, state: dict) -> None:
        load_training_state(self, state)
        self.valid_history = list(state["valid_history"])
        self.avg = [a.to(self.device) for a in state["avg"]] if state["avg"] is not None else None
        self.avg_steps = state["avg_steps"]


__all__ = ["LMTraining", "perplexity"]
