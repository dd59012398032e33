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

import hashlib
import math
import time

import torch
import torch.nn.functional as F

from ..nn import count_flops
from ..registry import register
from ..spaces import Architecture, SearchSpace
from ..training import default_device, load_training_state, training_state
from .base import Evaluation, Evaluator

_DATA_CACHE: dict = {}


def arch_seed(seed: int, arch: Architecture) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}:{arch}".encode()).digest()[:4], "little")


def load_data_cached(cfg: dict):
    """One copy of a data set per process, keyed by its config."""
    from ..data.images import load_image_data
    key = repr(sorted(cfg.items()))
    if key not in _DATA_CACHE:
        _DATA_CACHE[key] = load_image_data(**cfg)
    return _DATA_CACHE[key]


def make_augment(spec, data):
    """``auto``/True: the standard CIFAR recipe (pad 4, random crop, horizontal flip) scaled to
    the image, pad H/8, and no flip for digits (a mirrored digit is another digit); a dict
    gives Augment's arguments; False/None: no augmentation."""
    from ..data.images import Augment
    if spec in (True, "auto"):
        spec = {"pad": max(1, data.shape[1] // 8), "flip": data.name != "digits"}
    return Augment(**spec) if spec else None


def cosine_restart_lr(epoch: int, lr_max: float, lr_min: float, t0: int, t_mul: int) -> float:
    """SGDR (Loshchilov & Hutter 2017) as the ENAS code applies it: constant within an epoch,
    period t0 epochs, each period t_mul times longer than the last (10+20+40+80+160 = 310 and
    +320 = 630: the ENAS search and final epoch counts)."""
    t_i, t_cur = t0, epoch
    while t_cur >= t_i:
        t_cur -= t_i
        t_i *= t_mul
    return lr_min + 0.5 * (lr_max - lr_min) * (1 + math.cos(math.pi * t_cur / t_i))


def loss_with_aux(out, y: torch.Tensor, aux_weight: float):
    """Cross-entropy of ``out``, or of ``(logits, aux_logits)`` plus ``aux_weight`` × the
    auxiliary head's (ENAS micro_child.py: 0.4); returns (loss, logits)."""
    if isinstance(out, tuple):
        out, aux = out
        return F.cross_entropy(out, y) + aux_weight * F.cross_entropy(aux, y), out
    return F.cross_entropy(out, y), out


def cutout(x: torch.Tensor, size: int, generator: torch.Generator) -> torch.Tensor:
    """Zero a size x size square at a random centre of each image (it may reach past the edge;
    DeVries & Taylor 2017), on the whole batch at once; applied after normalisation."""
    b, _, h, w = x.shape
    cy = torch.randint(0, h, (b, 1, 1), generator=generator)
    cx = torch.randint(0, w, (b, 1, 1), generator=generator)
    ys, xs = torch.arange(h).view(1, h, 1), torch.arange(w).view(1, 1, w)
    keep = ((ys - cy).abs() * 2 >= size) | ((xs - cx).abs() * 2 >= size)
    return x * keep.unsqueeze(1).to(x.device, x.dtype)


class Training:
    """SGD training of one network, an epoch at a time, with a checkpointable state; shared by
    search-time evaluation and retraining (``torchnas train``).

    Schedules: ``cosine`` (to 0 over the run, per step), ``cosine_restarts`` (ENAS: SGDR per
    epoch from ``lr`` to ``lr_min``, periods ``lr_t0``·``lr_t_mul``^k), ``constant``. For ENAS's
    final training: ``aux_weight`` (the auxiliary head's loss weight, 0.4), ``drop_path`` (the
    final keep probability, reached linearly over training as in ``micro_child.py``),
    ``cutout`` (the side of the zeroed square, 16; DeVries & Taylor 2017) and ``grad_clip``.
    """

    def __init__(self, model, data, epochs: int, batch_size: int = 128, lr: float = 0.1, momentum: float = 0.9,
                 nesterov: bool = True, weight_decay: float = 1e-4, schedule: str = "cosine",
                 augment: bool | str | dict = "auto", seed: int = 0, channels_last: bool = True,
                 lr_min: float = 0.0, lr_t0: int = 10, lr_t_mul: int = 2, aux_weight: float = 0.0,
                 drop_path: float = 1.0, cutout: int = 0, grad_clip: float | None = None,
                 device: str | None = "auto"):
        if schedule not in ("cosine", "cosine_restarts", "constant"):
            raise ValueError(f"training schedule must be 'cosine', 'cosine_restarts' or 'constant', not {schedule!r}")
        if epochs < 1 or batch_size < 1 or lr <= 0:
            raise ValueError(f"training needs epochs >= 1, batch_size >= 1 and lr > 0 (got {epochs}, {batch_size}, {lr})")
        if not 0 < drop_path <= 1 or cutout < 0 or aux_weight < 0:
            raise ValueError(f"training needs 0 < drop_path <= 1 (a keep probability), cutout >= 0 and "
                             f"aux_weight >= 0 (got {drop_path}, {cutout}, {aux_weight})")
        self.channels_last, self.device = channels_last, default_device(device)
        model = model.to(self.device)     # the data stay on the CPU; each batch is moved
        self.model = model.to(memory_format=torch.channels_last) if channels_last else model
        self.data, self.epochs, self.batch_size, self.lr, self.schedule = data, epochs, batch_size, lr, schedule
        self.restarts = (lr_min, lr_t0, lr_t_mul)
        self.aux_weight, self.drop_path, self.cutout, self.grad_clip = aux_weight, drop_path, cutout, grad_clip
        self.opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, nesterov=nesterov,
                                   weight_decay=weight_decay)
        self.augment = make_augment(augment, data)
        self.generator = torch.Generator().manual_seed(seed)
        self.total_steps = epochs * math.ceil(len(data.train_x) / batch_size)
        self.epoch = self.step = 0

    def _input(self, xb):
        xb = self.data.normalize(xb).to(self.device, non_blocking=True)
        return xb.contiguous(memory_format=torch.channels_last) if self.channels_last else xb

    def train_epoch(self) -> dict:
        """One epoch; returns mean loss, images and seconds, or a ``diverged`` reason."""
        from ..data.images import iterate_batches
        self.model.train()
        running, seen, t0 = 0.0, 0, time.perf_counter()
        for xb, yb in iterate_batches(self.data.train_x, self.data.train_y, self.batch_size, self.generator):
            if self.schedule == "cosine":
                lr = 0.5 * self.lr * (1 + math.cos(math.pi * self.step / self.total_steps))
            elif self.schedule == "cosine_restarts":
                lr = cosine_restart_lr(self.epoch, self.lr, *self.restarts)
            else:
                lr = self.lr
            for g in self.opt.param_groups:
                g["lr"] = lr
            if self.drop_path < 1:
                self.model.drop_path_keep_prob = 1 - (1 - self.drop_path) * self.step / self.total_steps
            if self.augment is not None:
                xb = self.augment(xb, self.generator)
            xb = self._input(xb)
            if self.cutout:
                xb = cutout(xb, self.cutout, self.generator)
            loss, _ = loss_with_aux(self.model(xb), yb.to(self.device), self.aux_weight)
            if not torch.isfinite(loss):
                return {"diverged": f"non-finite loss ({loss.item()}) at epoch {self.epoch + 1}, step {self.step + 1}"}
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            if self.grad_clip:
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
            self.opt.step()
            running += loss.item() * len(yb)
            seen += len(yb)
            self.step += 1
        self.epoch += 1
        return {"loss": running / max(seen, 1), "images": seen, "seconds": time.perf_counter() - t0,
                "lr": self.opt.param_groups[0]["lr"]}

    @torch.no_grad()
    def accuracy(self, split: str = "valid", batch_size: int = 500) -> float:
        x, y = (self.data.valid_x, self.data.valid_y) if split == "valid" else (self.data.test_x, self.data.test_y)
        self.model.eval()
        correct = sum((self.model(self._input(x[i:i + batch_size])).argmax(1).cpu() == y[i:i + batch_size]).sum().item()
                      for i in range(0, len(x), batch_size))
        return correct / max(len(x), 1)

    def state_dict(self) -> dict:
        return training_state(self)

    def load_state_dict(self, state: dict) -> None:
        load_training_state(self, state)


class ChildTrainer(Evaluator):
    """Evaluator that trains each child from scratch on an image data set."""

    def __init__(self, space: SearchSpace, data: dict | None = None, epochs: int = 50, batch_size: int = 128,
                 lr: float = 0.1, momentum: float = 0.9, nesterov: bool = True, weight_decay: float = 1e-4,
                 schedule: str = "cosine", reward: str = "acc3", last_k: int = 5, augment: bool | str | dict = "auto",
                 seed: int = 0, channels_last: bool = True):
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
        self.seed, self.channels_last = seed, channels_last

    def data(self):
        return load_data_cached(self.data_cfg)

    def evaluate(self, arch: Architecture) -> Evaluation:
        data = self.data()
        seed = arch_seed(self.seed, arch)
        torch.manual_seed(seed)   # weight init
        model = self.space.child(arch, data.shape[0], data.num_classes)
        metrics = {"params": sum(p.numel() for p in model.parameters()), "flops": count_flops(model, data.shape)}
        run = Training(model, data, self.epochs, self.batch_size, self.lr, self.momentum, self.nesterov,
                       self.weight_decay, self.schedule, self.augment, seed, self.channels_last)
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
    data = dict(settings.pop("data", None) or {"name": "digits"})
    if data_dir and not data.get("data_dir") and not data.get("path"):
        data["data_dir"] = data_dir
    return ChildTrainer(space, data=data, seed=seed, **settings)
