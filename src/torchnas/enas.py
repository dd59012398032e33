"""The ENAS loop (Pham et al. 2018, §2.2-2.4): shared weights and controller, alternating.

Every child is a sub-graph of one network whose weights ω are shared (``space.shared(...)``).
Each epoch has two phases:

1. **Shared weights.** One pass over the training data; every minibatch (every BPTT window
   for a language model) gets its own architecture, sampled from the policy
   (``strategy.propose``), and ω takes an SGD step on its loss. How ω trains and how an
   architecture is rewarded belong to the space's task: ``tasks.images.ImageSharedWeights``
   (accuracy on one validation minibatch) and ``tasks.language.LMSharedWeights`` (80 / ppl on
   one validation window).
2. **Controller.** ``train_steps`` updates of ``num_aggregate`` samples each; a sample's reward
   is computed with ω on validation data (``valid_rl`` in the authors' children), plus the
   entropy bonus that the strategy adds.

A checkpoint (ω, its optimizer, the strategy with controller and Adam, every RNG) is written
after each epoch; a run killed at any point resumes from its last finished epoch and repeats
the same computation. At the end, *deriving* samples ``derive_samples`` architectures from the
trained policy, scores each on ``derive_batches`` validation minibatches with ω, and keeps the
best (and the runners-up) in ``derived.json``; ``best.json`` names the winner for ``torchnas train``.
"""
from __future__ import annotations

import inspect
import random
import time

from .runs import RunDir, rng_states, set_rng_states
from .settings import Count, NonNegativeInt, SettingsError, checked
from .tasks import task_of
from .training.device import default_device

class ENASSearch:
    """The ENAS loop around a task's shared weights (``task.SharedWeights``: every setting not
    the loop's own goes to it, e.g. ``data``, ``net``, ``batch_size``, ``lr_max`` or ``bptt``).

    ``warmup_epochs``: epochs of uniformly sampled architectures before the controller trains.
    ``shared_sampling``: ``policy`` (ENAS: the controller's samples train ω) or ``uniform`` (ω
    trains on uniform architectures while the controller learns from it).
    ``derive_batches``: validation minibatches each derived candidate is scored on (authors: 1).
    """

    def __init__(self, space, strategy, epochs: Count = 10, train_steps: NonNegativeInt | None = None,
                 derive_samples: Count = 100, keep: Count = 5, warmup_epochs: NonNegativeInt = 0, derive_batches: Count = 1,
                 shared_sampling: str = "policy", seed: int = 0, run_dir: RunDir | None = None, **shared):
        shared_weights = task_of(space).SharedWeights
        train_steps = shared_weights.default_train_steps if train_steps is None else train_steps
        if epochs < 1 or train_steps < 0 or derive_samples < 1:
            raise ValueError("ENAS needs epochs >= 1, train_steps >= 0, derive_samples >= 1")
        if not 0 <= warmup_epochs <= epochs or derive_batches < 1:
            raise ValueError(f"ENAS needs 0 <= warmup_epochs <= epochs ({warmup_epochs}, {epochs}) and "
                             f"derive_batches >= 1 ({derive_batches})")
        if shared_sampling not in ("policy", "uniform"):
            raise ValueError(f"shared_sampling must be 'policy' (ENAS: the controller's samples train the shared "
                             f"weights) or 'uniform', not {shared_sampling!r}")
        self.space, self.strategy, self.run_dir, self.seed = space, strategy, run_dir, seed
        self.epochs, self.train_steps, self.derive_samples, self.keep = epochs, train_steps, derive_samples, keep
        self.warmup_epochs, self.derive_batches, self.shared_sampling = warmup_epochs, derive_batches, shared_sampling
        self.shared = shared_weights(space, seed=seed, epochs=epochs, **shared)
        self.metric = self.shared.metric
        self.epoch = self.updates = 0

    @property
    def net(self):
        """The shared-weight network ω."""
        return self.shared.net

    def metric_of(self, reward: float) -> float:
        return self.shared.metric_of(reward)

    # -- the two phases -------------------------------------------------------------------------
    def train_shared_epoch(self) -> dict:
        """One pass of ω over the training data, each minibatch with its own architecture."""
        return self.shared.train_epoch(self.sampler())

    def sampler(self):
        """``sample(n)``: the next n architectures of this epoch's shared phase, from the policy;
        during the warm-up, or throughout with ``shared_sampling: uniform`` (the controller then
        learns from shared weights that its choices do not train), uniformly at random (seeded by
        the epoch, so a resumed run draws the same)."""
        if self.epoch < self.warmup_epochs or self.shared_sampling == "uniform":
            rng = random.Random(self.seed * 1_000_003 + self.epoch)
            return lambda n: [self.space.random(rng) for _ in range(n)]
        return lambda n: self.strategy.propose(n)

    def valid_batch(self):
        """The next validation minibatch the reward is judged on (the shared generator's)."""
        return self.shared.valid_batch()

    def reward(self, arch, batch) -> float:
        return self.shared.reward(arch, batch)

    def rewards(self, pairs) -> list[float]:
        """Rewards of (architecture, validation batch) pairs, read back from the device at once."""
        return self.shared.rewards(pairs)

    def train_controller(self) -> list[dict]:
        """``train_steps`` REINFORCE updates. Each reads its samples' rewards back from the device
        once: the controller's next samples depend on them (it lives on the host, where the
        architectures steer Python; docs/design.md)."""
        stats = []
        for _ in range(self.train_steps):
            archs = self.strategy.ask()
            rewards = self.rewards([(a, self.valid_batch()) for a in archs])
            s = self.strategy.tell(archs, rewards)
            self.updates += 1
            stats.append({"update": self.updates, "epoch": self.epoch, **(s or {}),
                          self.metric: sum(self.metric_of(r) for r in rewards) / len(rewards)})
        return stats

    def derive(self) -> list[dict]:
        """Sample architectures from the policy and rank them by their mean reward on the same
        ``derive_batches`` validation minibatches (the authors score on one)."""
        _, archs, rewards = self.score_candidates()
        scored = sorted(((sum(r) / len(r), str(a)) for a, r in zip(archs, rewards)), key=lambda t: -t[0])
        return [{"arch": s, "reward": r, self.metric: self.metric_of(r)} for r, s in scored[:self.keep]]

    def score_candidates(self, batches: int | None = None) -> tuple[list, list, list[list[float]]]:
        """Derive's draws in derive's order: ``batches`` (default ``derive_batches``) validation
        minibatches, then ``derive_samples`` cells from the policy. Returns (the cells as drawn,
        the distinct ones in order of first draw, each distinct cell's reward on each minibatch);
        with more minibatches the first ``derive_batches`` are derive's own."""
        val = [self.valid_batch() for _ in range(batches or self.derive_batches)]
        drawn = self.strategy.propose(self.derive_samples)
        archs = list(dict.fromkeys(drawn))
        flat = self.rewards([(a, b) for a in archs for b in val])       # one read-back for all
        return drawn, archs, [flat[i * len(val):(i + 1) * len(val)] for i in range(len(archs))]

    # -- checkpoints and the loop ---------------------------------------------------------------
    def state_dict(self) -> dict:
        sh = self.shared
        return {"net": sh.net.state_dict(), "optimizer": sh.opt.state_dict(), "extra": sh.extra_state(),
                "strategy": self.strategy.state_dict(), "generator": sh.generator.get_state(),
                "epoch": self.epoch, "updates": self.updates, "rng": rng_states()}

    def load_state_dict(self, state: dict) -> None:
        sh = self.shared
        sh.net.load_state_dict(state["net"])
        sh.opt.load_state_dict(state["optimizer"])
        self.strategy.load_state_dict(state["strategy"])
        sh.generator.set_state(state["generator"])
        self.epoch, self.updates = state["epoch"], state["updates"]
        sh.load_extra_state(state.get("extra"), self.epoch)
        set_rng_states(state["rng"])

    def resume(self) -> "ENASSearch":
        if self.run_dir is not None:   # then drop log lines written after the checkpoint
            self.run_dir.load_checkpoint("enas", restore=self.load_state_dict)
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
                self.run_dir.append_jsonl(RunDir.EPOCHS, rec)
                self.run_dir.save_checkpoint(self.state_dict(), "enas")
            if on_epoch is not None:
                on_epoch(rec)
        derived = self.derive()
        if self.run_dir is not None:
            self.run_dir.write_json(RunDir.DERIVED, derived)
            self.run_dir.write_json(RunDir.BEST, {**derived[0], "derived_from": self.derive_samples})
        return derived


# the loop's own settings; every other ``enas:`` setting goes to the task's shared weights
LOOP_SETTINGS = tuple(inspect.signature(ENASSearch).parameters.keys() - {"space", "strategy", "seed", "run_dir",
                                                                          "shared"})


def allowed_settings(space) -> set[str]:
    """The ``enas:`` settings for ``space``: the loop's and its task's shared weights'."""
    return set(LOOP_SETTINGS) | (set(inspect.signature(task_of(space).SharedWeights).parameters) - {"space", "seed"})


def make_enas(space, strategy, seed: int = 0, **settings) -> ENASSearch:
    """The ENAS search for ``space``; unknown settings are an error that lists the allowed ones."""
    allowed = allowed_settings(space)
    unknown = sorted(set(settings) - allowed)
    if unknown:
        raise SettingsError(f"enas.{unknown[0]} is not a setting of ENAS on {space.name!r}; enas takes: "
                            f"{', '.join(sorted(allowed))}")
    loop = {k: v for k, v in settings.items() if k in LOOP_SETTINGS}
    shared = {k: v for k, v in settings.items() if k not in LOOP_SETTINGS}
    loop = checked("enas", ENASSearch, loop, fixed=("space", "strategy", "seed", "run_dir"))
    shared = checked("enas", task_of(space).SharedWeights, shared, fixed=("space", "seed", "epochs"))
    if "device" in shared:
        default_device(shared["device"], "enas.device")      # a device that is not here: an error now
    return ENASSearch(space, strategy, seed=seed, **loop, **shared)


def build_enas(rc) -> tuple:
    """``(space, ENAS search)`` of a resolved configuration (``config.RunConfig``): the one place
    a run's space, strategy and ``enas:`` settings become a search (api, ws-rank)."""
    from .config import build_space, build_strategy
    space = build_space(rc)
    return space, make_enas(space, build_strategy(rc, space), seed=rc.seed, **rc.enas)
