"""Train a child network from scratch; its validation accuracy is the reward.

Zoph & Le (2017) §4.1: children are trained with SGD, Nesterov momentum 0.9, learning rate
0.1 and weight decay 1e-4 for 50 epochs; "the reward ... is the maximum validation accuracy of
the last 5 epochs cubed". The learning-rate schedule is not given: we anneal with a cosine to 0
(``schedule: cosine``; ``constant`` is the alternative).

Every evaluation is seeded from the search seed and the architecture string, so an
architecture gets the same reward whichever worker trains it and in whichever order (for the
same ``threads`` per child: thread count can change the last bits of float sums). A child
whose loss becomes non-finite stops at once with reward 0 and the reason in its metrics.
"""
from __future__ import annotations

import torch

from ..nn import count_flops
from ..registry import register
from ..settings import Count, NonNegative, Positive, checked
from ..spaces import Architecture, SearchSpace
from ..data.images import load_data_cached, load_image_data
from ..training import Training, arch_seed
from ..training.images import AugmentSpec
from ..training.device import Precision, default_device
from .base import Evaluation, Evaluator, data_with_root

class ChildTrainer(Evaluator):
    """Evaluator that trains each child from scratch on an image data set."""
    trains_networks = True

    def __init__(self, space: SearchSpace, data: dict | None = None, epochs: Count = 50, batch_size: Count = 128,
                 lr: Positive = 0.1, momentum: NonNegative = 0.9, nesterov: bool = True, weight_decay: NonNegative = 1e-4,
                 schedule: str = "cosine", reward: str = "acc3", last_k: Count = 5, augment: AugmentSpec = "auto",
                 seed: int = 0, channels_last: bool = True, precision: Precision = "auto", device: str | None = "auto"):
        if reward not in ("acc3", "acc"):
            raise ValueError(f"trainer reward must be 'acc3' (Zoph & Le: max of last {last_k} "
                             f"validation accuracies, cubed) or 'acc', not {reward!r}")
        if epochs < 1 or batch_size < 1 or last_k < 1 or lr <= 0:
            raise ValueError(f"trainer needs epochs, batch_size, last_k >= 1 and lr > 0 "
                             f"(got {epochs}, {batch_size}, {last_k}, {lr})")
        self.space, self.data_cfg = space, dict(data or {"name": "digits"})
        self.epochs, self.batch_size, self.lr = epochs, batch_size, lr
        self.momentum, self.nesterov, self.weight_decay = momentum, nesterov, weight_decay
        self.schedule, self.reward, self.last_k, self.augment = schedule, reward, last_k, augment
        self.seed, self.channels_last, self.precision, self.device = seed, channels_last, precision, device
        default_device(device, "evaluator.device")    # a device that is not here: an error now

    def data(self):
        return load_data_cached(self.data_cfg)

    def check(self) -> None:
        self.data()

    def step_flops(self, archs: list[Architecture]) -> float | None:
        if default_device(self.device).type != "cpu":
            return None
        data = self.data()
        flops = [count_flops(self.space.child(a, data.shape[0], data.num_classes), data.shape) for a in archs]
        return sum(flops) / len(flops) * min(self.batch_size, len(data.train_y))

    def evaluate(self, arch: Architecture) -> Evaluation:
        data = self.data()
        seed = arch_seed(self.seed, arch)
        torch.manual_seed(seed)   # weight init
        model = self.space.child(arch, data.shape[0], data.num_classes)
        metrics = {"params": sum(p.numel() for p in model.parameters()), "flops": count_flops(model, data.shape)}
        run = Training(model, data, self.epochs, self.batch_size, self.lr, self.momentum, self.nesterov,
                       self.weight_decay, self.schedule, self.augment, seed, self.channels_last, device=self.device,
                       precision=self.precision)
        accs, images, seconds = [], 0, 0.0
        for _ in range(self.epochs):
            out = run.train_epoch()
            if "diverged" in out:
                metrics.update(epochs=run.epoch, diverged=True, reason=out["diverged"])
                return Evaluation(0.0, metrics)
            images, seconds = images + out["images"], seconds + out["seconds"]
            if run.epoch > self.epochs - self.last_k:   # only the last k epochs enter the reward
                accs.append(run.accuracy("valid"))
        best_recent = max(accs[-self.last_k:])
        metrics.update(epochs=run.epoch, valid_acc=accs[-1], valid_acc_best_last=best_recent,
                       train_loss=out["loss"], train_seconds=round(seconds, 3),
                       images_per_s=round(images / max(seconds, 1e-9), 1))
        return Evaluation(best_recent ** 3 if self.reward == "acc3" else best_recent, metrics)


@register("evaluator", "trainer")
def _child_trainer(space=None, data_dir: str | None = None, seed: int = 0, **settings) -> ChildTrainer:
    """``data`` defaults to digits; the data root is the run's unless the data names its own."""
    data = data_with_root(settings.pop("data", None), data_dir, "digits")
    return ChildTrainer(space, data=checked("evaluator.data", load_image_data, data), seed=seed,
                        **checked("evaluator", ChildTrainer, settings, fixed=("space", "data", "seed"),
                                   owner="evaluator 'trainer'"))
