"""REINFORCE with a moving-average baseline (Williams 1992; Zoph & Le 2017 §3.2; ENAS §2.2).

For a batch of m architectures sampled from the controller,

    loss = −1/m Σ_k Σ_t log P(a_t | a_<t; θ) · (R_k − b)  +  w_skip · mean_k KL_k        (1)

where R_k is the reward plus ``entropy_weight`` × the sample's entropy (the ENAS code adds the
stop-gradient entropy to the reward: ``self.reward += self.entropy_weight * self.sample_entropy``),
b an exponential moving average of past rewards, ``b ← decay·b + (1 − decay)·mean(R)``, and
KL_k the skip penalty (ENAS macro: KL of each skip probability to ``skip_target``).

Choices made here where the papers leave room, each a constructor argument:

* b is the average of *previous* rewards (Zoph & Le §3.2), so it is updated after the loss is
  formed; before the first batch there is none, and b starts at that batch's mean reward
  (AutoDL-Projects' REINFORCE does the same) instead of the ENAS code's 0, which would push
  up every early sample.
* Adam (both papers); gradients clipped to ``grad_clip`` in L2 norm when set.
* ``baseline_update="sample"`` follows the ENAS code instead: b moves once per sample and the
  sample's advantage uses the moved b (``main.py`` runs one baseline update per sampled
  architecture; the loss reads b after the update).

Asynchronous updates (Zoph & Le §3.3): with several controller replicas in flight, a batch is
told with the ``version`` (updates applied so far) of the weights it was sampled with. Its
gradient is that of (1) under *those* weights, kept until every batch sampled with them is told,
and it is applied to the *current* weights by the one optimizer (the parameter server's role);
the baseline is the learner's. ``max_staleness`` drops (and counts) a gradient more than that
many versions old.
"""
from __future__ import annotations

import copy

import torch

from ..controller import Controller
from ..settings import Count, Fraction, NonNegative, NonNegativeInt, Positive, checked
from ..spaces import AnchorSet
from ..registry import register
from ..training.device import default_device
from .base import Strategy


@register("strategy")
class Reinforce(Strategy):
    name = "reinforce"

    def __init__(self, space, seed: int = 0, batch_size: Count = 8, lr: Positive = 6e-4,
                 baseline_decay: Fraction = 0.95, entropy_weight: float = 0.0,
                 skip_weight: NonNegative = 0.0, grad_clip: Positive | None = None,
                 adam_betas: tuple[float, float] = (0.9, 0.999), adam_eps: Positive = 1e-8,
                 controller: dict | None = None, depth_schedule: dict | None = None,
                 baseline_update: str = "batch", max_staleness: NonNegativeInt | None = None,
                 device: str = "cpu"):
        super().__init__(space, seed)
        if batch_size < 1:
            raise ValueError(f"reinforce batch_size must be >= 1, got {batch_size}")
        if not 0 <= baseline_decay < 1:
            raise ValueError(f"reinforce baseline_decay must be in [0, 1), got {baseline_decay}")
        if lr <= 0:
            raise ValueError(f"reinforce lr must be > 0, got {lr}")
        if baseline_update not in ("batch", "sample"):
            raise ValueError(f"reinforce baseline_update must be 'batch' or 'sample', not {baseline_update!r}")
        # "auto": CUDA when present (its draws then differ from the CPU's)
        device = default_device(device, f"strategies.{self.name}.device")
        self.batch_size, self.baseline_decay, self.baseline_update = batch_size, baseline_decay, baseline_update
        self.entropy_weight, self.skip_weight, self.grad_clip = entropy_weight, skip_weight, grad_clip
        controller = checked(f"strategies.{self.name}.controller", Controller, controller, fixed=("space", "seed"))
        self.controller = Controller(space, seed=seed, **controller).to(device)
        self.optimizer = torch.optim.Adam(self.controller.parameters(), lr=lr,
                                          betas=tuple(adam_betas), eps=adam_eps)
        self.generator = torch.Generator(device=device).manual_seed(seed)
        self.baseline: float | None = None
        self._pending, self._pending_version = None, 0
        self.samples = 0
        self.full_space = space
        self.depth_schedule = _check_depth_schedule(depth_schedule, space)
        self._has_skips = any(isinstance(d, AnchorSet) and d.num_anchors for d in space.decisions)
        self.max_staleness = max_staleness
        self.version = self.dropped = 0       # updates applied; stale gradients dropped
        self._weights: dict[int, list] = {}   # version -> [its weights (once updated), its space, batches in flight]
        self._shadow: Controller | None = None

    def depth(self) -> int | None:
        """Zoph & Le §4.1 progressive depth: ``start`` layers, ``+step`` every ``every``
        sampled architectures, up to the space's own depth."""
        if not self.depth_schedule:
            return None
        d = self.depth_schedule
        return min(self.full_space.layers, d["start"] + d["step"] * (self.samples // d["every"]))

    def ask(self):
        depth = self.depth()
        if depth is not None and depth != self.controller.space.layers:
            self.controller.set_space(self.full_space.resized(depth))
        self._pending = self.controller.sample(self.batch_size, self.generator)
        self._pending_version = self.version
        return list(self._pending.archs)

    def hold(self, version: int) -> None:
        """A batch sampled with ``version`` is in flight: its weights are copied only if an update
        comes before it is told (:meth:`_keep_held`), so a synchronous search copies nothing."""
        held = self._weights.setdefault(version, [None, self.controller.space, 0])
        held[2] += 1

    def _keep_held(self) -> None:
        """Before the weights change: copy them for the batches in flight that were sampled with them."""
        held = self._weights.get(self.version)
        if held is not None and held[0] is None:
            held[0] = {k: v.detach().clone() for k, v in self.controller.state_dict().items()}

    def _release(self, version: int):
        """The weights of ``version`` for one told batch (forgotten after its last batch)."""
        held = self._weights.get(version)
        if held is None:
            raise ValueError(f"reinforce: no batch sampled with controller version {version} is in flight "
                             f"(the current version is {self.version})")
        held[2] -= 1
        if held[2] == 0:
            del self._weights[version]
        return held

    @torch.no_grad()
    def propose(self, n: int = 1):
        """Architectures from the current policy, without learning from them (ENAS samples one
        per shared-weight minibatch, and many when deriving)."""
        return self.controller.draw(n, self.generator)

    def _scored(self, archs, version: int | None):
        """``(log-probabilities of archs, the controller they are under, staleness)``: the last
        ask's when it is these architectures at the current version, else rescored, under the
        weights of ``version`` when those are older than the current ones."""
        k, stale = len(archs), 0 if version is None else self.version - version
        held = None if version is None or version not in self._weights else self._release(version)
        if stale and held is None:
            raise ValueError(f"reinforce: a batch told with version {version} was not held (ask_versioned)")
        pending, learner, self._pending = self._pending, self.controller, None
        if stale:                                   # the gradient under the weights it sampled with
            if self._shadow is None:
                self._shadow = copy.deepcopy(self.controller)
            learner = self._shadow
            learner.set_space(held[1])
            learner.load_state_dict(held[0])
            pending = learner.log_prob(archs)
        elif pending is None or pending.archs[:k] != list(archs) or self._pending_version != self.version:
            pending = self.controller.log_prob(archs)      # not the last ask, or asked before an update
        return pending, learner, stale

    def tell(self, archs, rewards, version: int | None = None):
        k = len(archs)
        self.samples += k
        stale = 0 if version is None else self.version - version
        if self.max_staleness is not None and stale > self.max_staleness:
            self._release(version)
            self.dropped, self._pending = self.dropped + 1, None
            return {"staleness": stale, "dropped": self.dropped, "reward": float(sum(rewards) / k)}
        pending, learner, stale = self._scored(archs, version)
        log_probs, entropies = pending.log_probs[:k], pending.entropies[:k]
        rewards = torch.as_tensor(rewards, dtype=torch.float32, device=log_probs.device)
        raw_reward = rewards.mean().item()
        rewards = rewards + self.entropy_weight * entropies.detach()
        mean_reward = rewards.mean().item()
        if self.baseline_update == "sample":   # ENAS: b updated by each sample, then used (main.py)
            advantage = torch.empty_like(rewards)
            for i, r in enumerate(rewards.tolist()):
                self.baseline = r if self.baseline is None else (
                    self.baseline_decay * self.baseline + (1 - self.baseline_decay) * r)
                advantage[i] = r - self.baseline
        else:
            if self.baseline is None:
                self.baseline = mean_reward
            advantage = rewards - self.baseline
        loss = -(log_probs * advantage).sum() / k
        if self.skip_weight:
            loss = loss + self.skip_weight * pending.skip_penalties[:k].mean()
        self.optimizer.zero_grad()
        loss.backward()
        if learner is not self.controller:          # the stale gradient, applied to the current weights
            for p, q in zip(self.controller.parameters(), learner.parameters()):
                p.grad, q.grad = q.grad, None
        grad_norm = None
        if self.grad_clip:
            grad_norm = torch.nn.utils.clip_grad_norm_(self.controller.parameters(), self.grad_clip).item()
        self._keep_held()
        self.optimizer.step()
        self.version += 1
        if self.baseline_update == "batch":
            self.baseline = self.baseline_decay * self.baseline + (1 - self.baseline_decay) * mean_reward
        stats = {"loss": loss.item(), "baseline": self.baseline, "reward": raw_reward,
                 "reward_with_bonus": mean_reward,
                 "entropy": entropies.mean().item(), "log_prob": log_probs.mean().item()}
        if grad_norm is not None:
            stats["grad_norm"] = grad_norm
        if version is not None:
            stats["staleness"] = stale
        if self.depth_schedule:
            stats["layers"] = self.controller.space.layers
        if self._has_skips:
            stats["skip_penalty"] = pending.skip_penalties[:k].mean().item()
        return stats

    def state_dict(self):
        return {**super().state_dict(), "controller": self.controller.state_dict(),
                "optimizer": self.optimizer.state_dict(), "generator": self.generator.get_state(),
                "baseline": self.baseline, "samples": self.samples, "version": self.version,
                "dropped": self.dropped}

    def load_state_dict(self, state):
        super().load_state_dict(state)
        self.controller.load_state_dict(state["controller"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])
        self.baseline = state["baseline"]
        self.samples = state["samples"]
        self.version, self.dropped = state.get("version", 0), state.get("dropped", 0)
        self._pending, self._weights = None, {}      # batches in flight are sampled again


def _check_depth_schedule(schedule, space):
    if not schedule:
        return None
    if not hasattr(space, "resized"):
        raise ValueError(f"depth_schedule needs a space with a depth; {space.name!r} has none")
    d = {"start": 6, "step": 2, "every": 1600, **schedule}
    if set(d) != {"start", "step", "every"}:
        raise ValueError(f"depth_schedule takes start, step and every; got {sorted(schedule)}")
    if d["start"] < 1 or d["step"] < 0 or d["every"] < 1:
        raise ValueError(f"depth_schedule needs start >= 1, step >= 0, every >= 1; got {d}")
    return d
