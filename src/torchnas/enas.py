"""The ENAS loop (Pham et al. 2018, §2.2-2.4): shared weights and controller, alternating.

Every child is a sub-graph of one network whose weights ω are shared (``space.shared(...)``).
Each epoch has two phases:

1. **Shared weights.** One pass over the training split; for every minibatch one
   architecture is sampled from the policy (``strategy.propose``) and ω takes an SGD step on
   its loss (Nesterov momentum, l2 weight decay, gradient-norm clipping, cosine learning rate
   with warm restarts, T0 = 10, Tmul = 2: ``src/cifar10/main.py`` and ``src/utils.py``).
2. **Controller.** ``train_steps`` updates of ``num_aggregate`` samples each; a sample's reward
   is its accuracy on one minibatch of the validation split, computed with ω (``valid_rl``
   in the authors' children), plus the entropy bonus that the strategy adds.

A checkpoint (ω, its optimizer, the strategy with controller and Adam, every RNG) is written
after each epoch; a run killed at any point resumes from its last finished epoch and repeats
the same computation. At the end, *deriving* samples ``derive_samples`` architectures from the
trained policy, scores each on one validation minibatch with ω, and keeps the best (and the
runners-up) in ``derived.json``; ``best.json`` names the winner for ``torchnas train``.
"""
from __future__ import annotations

import contextlib
import math
import random
import time

import torch

from .evaluators.trainer import load_data_cached
from .runs import RunDir, RunError, rng_states, set_rng_states
from .training import Training

EPOCHS, DERIVED = RunDir.EPOCHS, RunDir.DERIVED


@contextlib.contextmanager
def frozen_bn_stats(model):
    """Batch statistics of the minibatch, but running statistics left untouched."""
    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    saved = [m.momentum for m in bns]
    for m in bns:
        m.momentum = 0.0
    try:
        yield
    finally:
        for m, mom in zip(bns, saved):
            m.momentum = mom


class ENASSearch:
    """ENAS on images (macro and micro spaces); :class:`ENASLMSearch` is the language-model
    version. Both share the controller phase, deriving, checkpoints and the loop."""

    metric = "valid_acc"        # what a reward is computed from, logged per controller update
    warmup_epochs = 0           # epochs of uniformly sampled architectures before the controller trains
    derive_batches = 1          # validation minibatches each derived candidate is scored on

    def metric_of(self, reward: float) -> float:
        return reward

    def __init__(self, space, strategy, data: dict, net: dict | None = None, epochs: int = 10,
                 batch_size: int = 128, lr_max: float = 0.05, lr_min: float = 0.0005, lr_t0: int = 10,
                 lr_t_mul: int = 2, momentum: float = 0.9, nesterov: bool = True, weight_decay: float = 1e-4,
                 grad_clip: float | None = 5.0, augment="auto", aux_weight: float = 0.0,
                 train_steps: int = 30, reward_batch: int | None = None,
                 reward_bn: str = "train", derive_samples: int = 100, keep: int = 5, warmup_epochs: int = 0,
                 derive_batches: int = 1, shared_sampling: str = "policy", seed: int = 0,
                 run_dir: RunDir | None = None, channels_last: bool = True, max_train_batches: int | None = None,
                 device: str | None = "auto"):
        if reward_bn not in ("train", "eval"):
            raise ValueError(f"reward_bn must be 'train' (minibatch statistics) or 'eval', not {reward_bn!r}")
        if epochs < 1 or batch_size < 1 or train_steps < 0 or derive_samples < 1:
            raise ValueError("ENAS needs epochs >= 1, batch_size >= 1, train_steps >= 0, derive_samples >= 1")
        if not 0 <= warmup_epochs <= epochs or derive_batches < 1:
            raise ValueError(f"ENAS needs 0 <= warmup_epochs <= epochs ({warmup_epochs}, {epochs}) and "
                             f"derive_batches >= 1 ({derive_batches})")
        if shared_sampling not in ("policy", "uniform"):
            raise ValueError(f"shared_sampling must be 'policy' (ENAS: the controller's samples train the shared "
                             f"weights) or 'uniform', not {shared_sampling!r}")
        self.warmup_epochs, self.derive_batches = warmup_epochs, derive_batches
        self.shared_sampling = shared_sampling
        self.space, self.strategy, self.run_dir, self.seed = space, strategy, run_dir, seed
        self.data = load_data_cached(data)
        self.epochs, self.batch_size, self.train_steps = epochs, batch_size, train_steps
        self.reward_bn = reward_bn
        self.reward_batch = reward_batch or batch_size
        self.derive_samples, self.keep = derive_samples, keep
        torch.manual_seed(seed)
        net = dict(net or {})
        if net.get("aux_head"):
            net.setdefault("image_size", self.data.shape[1])
        # the shared phase is the one image training loop, with a new architecture per minibatch
        self.training = Training(space.shared(self.data.shape[0], self.data.num_classes, **net), self.data,
                                 epochs=epochs, batch_size=batch_size, lr=lr_max, momentum=momentum,
                                 nesterov=nesterov, weight_decay=weight_decay, schedule="cosine_restarts",
                                 augment=augment, seed=seed, channels_last=channels_last, lr_min=lr_min,
                                 lr_t0=lr_t0, lr_t_mul=lr_t_mul, aux_weight=aux_weight, grad_clip=grad_clip,
                                 device=device, max_batches=max_train_batches)
        self.opt, self.generator, self.device = self.training.opt, self.training.generator, self.training.device
        self.epoch = self.updates = 0

    @property
    def net(self):
        """The shared-weight network (its training loop's model)."""
        return self.training.model

    @net.setter
    def net(self, model) -> None:
        self.training.model = model

    # -- pieces -------------------------------------------------------------------------------
    def _input(self, xb):
        return self.training._input(xb)

    def train_shared_epoch(self) -> dict:
        """One pass of the shared weights over the training split (:meth:`Training.train_epoch`),
        each minibatch with its own architecture (:meth:`sample_for_training`)."""
        self.training.epoch = self.epoch      # the learning rate's epoch (a resumed run included)
        archs = iter(self.sample_for_training(self.training.batches_per_epoch()))
        out = self.training.train_epoch(lambda: next(archs))
        if "diverged" in out:
            raise RunError(f"shared-weight training diverged: {out['diverged']}; lower enas.lr_max or set "
                           f"enas.grad_clip")
        return {"lr": out["lr"], "loss": out["loss"], "train_acc": out["train_acc"], "images": out["images"],
                "shared_seconds": out["seconds"]}

    def sample_for_training(self, n: int) -> list:
        """One architecture per minibatch, sampled from the policy as one batch; during the
        warm-up, or throughout with ``shared_sampling: uniform`` (the controller then learns
        from shared weights that its choices do not train), uniformly at random (seeded by the
        epoch, so a resumed run draws the same)."""
        if self.epoch < self.warmup_epochs or self.shared_sampling == "uniform":
            rng = random.Random(self.seed * 1_000_003 + self.epoch)
            return [self.space.random(rng) for _ in range(n)]
        return self.strategy.propose(n)

    def _valid_batch(self):
        idx = torch.randperm(len(self.data.valid_y), generator=self.generator)[:self.reward_batch]
        return self._input(self.data.valid_x[idx]), self.data.valid_y[idx].to(self.device)

    @torch.no_grad()
    def reward(self, arch, batch) -> float:
        """Accuracy of ``arch`` with the shared weights on one validation minibatch."""
        x, y = batch
        aux = getattr(self.net, "compute_aux", None)
        if aux is not None:
            self.net.compute_aux = False      # the auxiliary head's output would be discarded
        try:
            if self.reward_bn == "train":
                self.net.train()
                with frozen_bn_stats(self.net):
                    logits = self.net(x, arch)
            else:
                self.net.eval()
                logits = self.net(x, arch)
        finally:
            if aux is not None:
                self.net.compute_aux = aux
        if isinstance(logits, tuple):
            logits = logits[0]
        return (logits.argmax(1) == y).float().mean().item()

    def train_controller(self) -> list[dict]:
        stats = []
        for _ in range(self.train_steps):
            archs = self.strategy.ask()
            rewards = [self.reward(a, self._valid_batch()) for a in archs]
            s = self.strategy.tell(archs, rewards)
            self.updates += 1
            stats.append({"update": self.updates, "epoch": self.epoch, **(s or {}),
                          self.metric: sum(self.metric_of(r) for r in rewards) / len(rewards)})
        return stats

    def derive(self) -> list[dict]:
        """Sample architectures from the policy and rank them by their mean reward on the same
        ``derive_batches`` validation minibatches (the authors score on one)."""
        batches = [self._valid_batch() for _ in range(self.derive_batches)]
        archs = list(dict.fromkeys(self.strategy.propose(self.derive_samples)))
        score = lambda a: sum(self.reward(a, b) for b in batches) / len(batches)
        scored = sorted(((score(a), str(a)) for a in archs), key=lambda t: -t[0])
        return [{"arch": s, "reward": r, self.metric: self.metric_of(r)} for r, s in scored[:self.keep]]

    # -- checkpoints and the loop ---------------------------------------------------------------
    def extra_state(self):
        return None

    def load_extra_state(self, state) -> None:
        pass

    def state_dict(self) -> dict:
        return {"net": self.net.state_dict(), "optimizer": self.opt.state_dict(), "extra": self.extra_state(),
                "strategy": self.strategy.state_dict(), "generator": self.generator.get_state(),
                "epoch": self.epoch, "updates": self.updates,
                "rng": rng_states()}

    def load_state_dict(self, state: dict) -> None:
        self.net.load_state_dict(state["net"])
        self.opt.load_state_dict(state["optimizer"])
        self.strategy.load_state_dict(state["strategy"])
        self.generator.set_state(state["generator"])
        self.epoch, self.updates = state["epoch"], state["updates"]
        self.load_extra_state(state.get("extra"))
        set_rng_states(state["rng"])

    def resume(self) -> "ENASSearch":
        ckpt = self.run_dir.load_checkpoint() if self.run_dir is not None else None
        if ckpt is not None:
            self.load_state_dict(ckpt)
        if self.run_dir is not None:   # drop log lines written after the checkpoint
            self.run_dir.restore({RunDir.EPOCHS: self.epoch, RunDir.STEPS: self.updates})
        return self

    def run(self, on_epoch=None) -> list[dict]:
        while self.epoch < self.epochs:
            t0 = time.perf_counter()
            rec = self.train_shared_epoch()
            steps = self.train_controller() if self.epoch >= self.warmup_epochs else []
            self.epoch += 1
            rec = {"epoch": self.epoch, **rec, "controller_updates": len(steps),
                   self.metric: (sum(s[self.metric] for s in steps) / len(steps)) if steps else None,
                   "seconds": round(time.perf_counter() - t0, 3)}
            if self.run_dir is not None:
                for s in steps:
                    self.run_dir.append_jsonl(RunDir.STEPS, s)
                self.run_dir.append_jsonl(EPOCHS, rec)
                self.run_dir.save_checkpoint(self.state_dict())
            if on_epoch is not None:
                on_epoch(rec)
        derived = self.derive()
        if self.run_dir is not None:
            self.run_dir.write_json(DERIVED, derived)
            self.run_dir.write_json(RunDir.BEST, {**derived[0], "derived_from": self.derive_samples})
        return derived


class ENASLMSearch(ENASSearch):
    """ENAS for the recurrent cell on a word-level corpus (google-research ``enas_lm``
    ``search.py``, ``child.py``, ``controller.py``; values in the ``enas-rnn`` preset).

    Shared phase: one pass over the training stream in BPTT windows with a new cell sampled
    for every window, the hidden state carried across windows (:class:`LMTraining`: SGD lr 20
    scaled by the window length, dropouts, slowness ``beta``, clipping 0.1). Controller phase:
    each sample's reward is ``reward_constant / ppl`` (80 / ppl, ``REWARD_CONSTANT``) on the
    next window of the validation stream (``reward_batch`` × ``bptt`` tokens, evaluation mode,
    zero initial state: the reference resets the state after every controller step); the
    windows cycle through the validation split.
    """

    metric = "valid_ppl"

    def metric_of(self, reward: float) -> float:
        return self.reward_constant / reward

    def __init__(self, space, strategy, data: dict, net: dict | None = None, epochs: int = 10,
                 batch_size: int = 128, bptt: int = 35, variable_bptt: bool = True, lr: float = 20.0,
                 grad_clip: float | None = 0.1, weight_decay: float = 0.0, alpha: float = 0.0, beta: float = 1.0,
                 train_steps: int = 25, reward_batch: int | None = None, reward_constant: float = 80.0,
                 derive_samples: int = 100, keep: int = 5, seed: int = 0, run_dir: RunDir | None = None,
                 max_train_batches: int | None = None, device: str | None = "auto"):
        from .data.ptb import batchify, load_ptb_cached
        from .training import LMTraining
        if space.task != "language-modeling":
            raise ValueError(f"ENAS on a language model needs a language-modeling space (enas-rnn), not {space.name!r}")
        if epochs < 1 or train_steps < 0 or derive_samples < 1 or reward_constant <= 0:
            raise ValueError("ENAS needs epochs >= 1, train_steps >= 0, derive_samples >= 1, reward_constant > 0")
        self.space, self.strategy, self.run_dir, self.seed = space, strategy, run_dir, seed
        self.epochs, self.train_steps, self.reward_constant = epochs, train_steps, reward_constant
        self.derive_samples, self.keep = derive_samples, keep
        torch.manual_seed(seed)
        self.corpus = load_ptb_cached(dict(data))
        net = dict(net or {})
        self.training = LMTraining(space.language_model(None, len(self.corpus), **net), self.corpus, epochs=epochs, batch_size=batch_size, bptt=bptt,
                                   variable_bptt=variable_bptt, lr=lr, grad_clip=grad_clip,
                                   weight_decay=weight_decay, alpha=alpha, beta=beta,
                                   max_batches=max_train_batches, seed=seed, device=device)
        self.opt = self.training.opt
        self.bptt, self.reward_batch = bptt, reward_batch or batch_size
        if len(self.corpus.valid) < 2 * self.reward_batch:
            raise ValueError(f"the validation split ({len(self.corpus.valid)} tokens) is too short for "
                             f"reward_batch {self.reward_batch} streams: lower enas.reward_batch")
        self.valid = batchify(self.corpus.valid, self.reward_batch).to(self.training.device)
        self.valid_windows = max(1, (len(self.valid) - 1) // bptt)
        self.valid_pos = 0
        self.generator = torch.Generator().manual_seed(seed)
        self.epoch = self.updates = 0

    def train_shared_epoch(self) -> dict:
        out = self.training.train_epoch(lambda: self.strategy.propose(1)[0])
        if "diverged" in out:
            raise RunError(f"shared-weight training diverged: {out['diverged']}; lower enas.lr or enas.grad_clip")
        return {"lr": out["lr"], "loss": out["loss"], "train_ppl": out["train_ppl"], "tokens": out["tokens"],
                "tokens_per_s": round(out["tokens_per_s"], 1), "shared_seconds": out["seconds"]}

    def _valid_batch(self):
        i = self.valid_pos * self.bptt
        n = min(self.bptt, len(self.valid) - 1 - i)
        self.valid_pos = (self.valid_pos + 1) % self.valid_windows
        return self.valid[i:i + n], self.valid[i + 1:i + 1 + n]

    @torch.no_grad()
    def reward(self, arch, batch) -> float:
        """``reward_constant`` / perplexity of ``arch`` on one validation window."""
        x, y = batch
        self.net.eval()
        logits = self.net(x, None, arch).logits
        ce = torch.nn.functional.cross_entropy(logits.flatten(0, 1), y.reshape(-1)).item()
        return self.reward_constant / math.exp(min(ce, 700.0))

    def extra_state(self):
        return {"valid_pos": self.valid_pos, "bptt_generator": self.training.generator.get_state(),
                "step": self.training.step}

    def load_extra_state(self, state) -> None:
        self.valid_pos = state["valid_pos"]
        self.training.generator.set_state(state["bptt_generator"])
        self.training.step, self.training.epoch = state["step"], self.epoch


ENAS_LOOPS = {"image-classification": ENASSearch, "language-modeling": ENASLMSearch}   # by task


def make_enas(space, strategy, seed: int = 0, **settings) -> ENASSearch:
    """The ENAS search for ``space`` (images or language model); unknown settings are an
    error that lists the allowed ones."""
    import inspect
    cls = ENAS_LOOPS[space.task]
    allowed = set(inspect.signature(cls).parameters) - {"space", "strategy", "seed", "run_dir"}
    unknown = set(settings) - allowed
    if unknown:
        raise ValueError(f"enas settings {sorted(unknown)} are unknown for {space.name!r}; allowed: {sorted(allowed)}")
    return cls(space, strategy, seed=seed, **settings)
