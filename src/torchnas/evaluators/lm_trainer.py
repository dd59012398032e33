"""Train a language-model child from scratch; the reward is ``c / (validation perplexity)²``
(Zoph & Le 2017, §4.2, with c = 80 as ENAS-pytorch reads the paper).

The child is the space's language model around the architecture's cell (``space.language_model``:
Zoph & Le's are two-layer models, ``net`` sets their size), trained by the project's one
language-model loop (:class:`torchnas.training.language.LMTraining`) on Penn Treebank and judged
by its exact validation perplexity. Seeded from the search seed and the architecture, as the
image trainer: a cell gets the same reward on whichever worker trains it. A child whose loss
becomes non-finite gets reward 0 and the reason in its metrics.
"""
from __future__ import annotations

import math

import torch

from ..data.ptb import load_ptb, load_ptb_cached
from ..registry import register
from ..settings import Count, NonNegative, Positive, checked
from ..spaces import Architecture, SearchSpace
from ..training import arch_seed
from ..training.device import Precision, default_device
from .base import Evaluation, Evaluator, data_with_root


class LMChildTrainer(Evaluator):
    """Evaluator that trains each child language model from scratch on a PTB-layout corpus."""
    trains_networks = True

    def __init__(self, space: SearchSpace, data: dict | None = None, net: dict | None = None, epochs: Count = 35,
                 batch_size: Count = 20, bptt: Count = 35, lr: Positive = 20.0, grad_clip: Positive | None = 0.25,
                 weight_decay: NonNegative = 0.0, reward_constant: Positive = 80.0, max_batches: Count | None = None,
                 seed: int = 0, precision: Precision = "auto", device: str | None = "auto"):
        if not hasattr(space, "language_model"):
            raise ValueError(f"evaluator 'lm-trainer' trains language models; space {space.name!r} builds none")
        from ..tasks.language import LanguageModeling
        self.space, self.data_cfg = space, dict(data or {"name": "ptb"})
        self.net = LanguageModeling().check_net_settings(space, net, "evaluator.net")
        self.epochs, self.batch_size, self.bptt, self.lr = epochs, batch_size, bptt, lr
        self.grad_clip, self.weight_decay, self.reward_constant = grad_clip, weight_decay, reward_constant
        self.max_batches, self.seed, self.precision, self.device = max_batches, seed, precision, device
        default_device(device, "evaluator.device")    # a device that is not here: an error now

    def data(self):
        return load_ptb_cached(self.data_cfg)

    def check(self) -> None:
        self.data()

    def evaluate(self, arch: Architecture) -> Evaluation:
        from ..training.language import LMTraining
        corpus = self.data()
        seed = arch_seed(self.seed, arch)
        torch.manual_seed(seed)                      # weight init
        model = self.space.language_model(arch, len(corpus), **self.net)
        metrics = {"params": sum(p.numel() for p in model.parameters())}
        training = LMTraining(model, corpus, epochs=self.epochs, batch_size=self.batch_size, bptt=self.bptt,
                              lr=self.lr, grad_clip=self.grad_clip, weight_decay=self.weight_decay,
                              max_batches=self.max_batches, seed=seed, precision=self.precision, device=self.device)
        seconds = tokens = 0.0
        for _ in range(self.epochs):
            out = training.train_epoch()
            if "diverged" in out:
                metrics.update(epochs=training.epoch, diverged=True, reason=out["diverged"])
                return Evaluation(0.0, metrics)
            seconds += out["seconds"]
            tokens += out["tokens"]
        valid = training.evaluate("valid")["ppl"]
        metrics.update(epochs=training.epoch, valid_ppl=valid, train_ppl=out["train_ppl"],
                       train_seconds=round(seconds, 3), tokens_per_s=round(tokens / max(seconds, 1e-9), 1))
        if not valid < math.inf:                   # inf or nan: the child learned nothing a reward can say
            metrics.update(diverged=True, reason=f"validation perplexity {valid}")
            return Evaluation(0.0, metrics)
        return Evaluation(self.reward_constant / valid / valid, metrics)     # c / ppl², without overflow


@register("evaluator", "lm-trainer")
def _lm_child_trainer(space=None, data_dir: str | None = None, seed: int = 0, **settings) -> LMChildTrainer:
    """``data`` defaults to Penn Treebank in the run's data root."""
    data = data_with_root(settings.pop("data", None), data_dir, "ptb")
    return LMChildTrainer(space, data=checked("evaluator.data", load_ptb, data), seed=seed,
                          **checked("evaluator", LMChildTrainer, settings, fixed=("space", "data", "seed"),
                                    owner="evaluator 'lm-trainer'"))
