"""The training loop of image networks: a standalone child (retraining, a search's child) or the
shared weights of ENAS (one sampled architecture per minibatch), an epoch at a time.
"""
from __future__ import annotations

import itertools
import math
import time
from typing import Literal

from pydantic import ConfigDict
from typing_extensions import TypedDict

import torch
import torch.nn.functional as F

from . import progress
from .device import Precision, StepLosses, autocast, default_device, precision_of
from .schedules import cosine_lr, cosine_restart_lr
from .state import load_training_state, training_state
from ..settings import Count, Fraction, NonNegative, NonNegativeInt, Positive, checked


class AugmentArgs(TypedDict, total=False):
    """``augment: {pad: N, flip: bool}``: :class:`torchnas.data.images.Augment`'s arguments."""
    __pydantic_config__ = ConfigDict(extra="forbid")      # a misspelt key is refused up front
    pad: NonNegativeInt
    flip: bool


AugmentSpec = bool | Literal["auto", "zoph_le"] | AugmentArgs | None


def make_augment(spec, data):
    """``auto``/True: the standard CIFAR recipe (pad 4, random crop, horizontal flip) scaled to
    the image, pad H/8, flipped only where the data set says a mirrored image keeps its class
    (``ImageData.mirror_symmetric``: not digits); ``zoph_le``: Zoph & Le's (§4.1) upsampling,
    random crop and flip, applied after their whitening (``Training``); a dict gives Augment's
    arguments; False/None: no augmentation."""
    from ..data.images import Augment, UpsampleCrop
    if spec == "zoph_le":
        return UpsampleCrop(flip=data.mirror_symmetric)
    if spec in (True, "auto"):
        spec = {"pad": max(1, data.shape[1] // 8), "flip": data.mirror_symmetric}
    return Augment(**checked("train.augment", Augment, spec)) if spec else None


def loss_with_aux(out, y: torch.Tensor, aux_weight: float):
    """Cross-entropy of ``out``, or of ``(logits, aux_logits)`` plus ``aux_weight`` × the
    auxiliary head's (ENAS micro_child.py: 0.4); returns (loss, logits)."""
    if isinstance(out, tuple):
        out, aux = out
        return F.cross_entropy(out, y) + aux_weight * F.cross_entropy(aux, y), out
    return F.cross_entropy(out, y), out


def cutout(x: torch.Tensor, size: int, generator: torch.Generator, at: str = "center") -> torch.Tensor:
    """Zero a ``size`` x ``size`` square of each image, clipped at the border, on the whole batch
    at once; applied after normalisation. ``at="center"``: its centre is uniform over the image
    (DeVries & Taylor 2017's reference: rows cy - size//2 .. cy - size//2 + size - 1);
    ``at="corner"``: its top-left corner is uniform over the image (the ENAS authors'
    models.py ``_pre_process``)."""
    if at not in ("center", "corner"):
        raise ValueError(f"cutout_at must be 'center' or 'corner', not {at!r}")
    b, _, h, w = x.shape
    top = torch.randint(0, h, (b, 1, 1), generator=generator)
    left = torch.randint(0, w, (b, 1, 1), generator=generator)
    if at == "center":
        top, left = top - size // 2, left - size // 2
    ys, xs = torch.arange(h).view(1, h, 1), torch.arange(w).view(1, 1, w)
    cut = (ys >= top) & (ys < top + size) & (xs >= left) & (xs < left + size)
    return x * (~cut).unsqueeze(1).to(x.device, x.dtype)


class Training:
    """SGD training of one network, an epoch at a time, with a checkpointable state; shared by
    search-time evaluation, retraining (``torchnas train``) and ENAS's shared weights
    (``train_epoch(arch_fn)``: the network is called as ``model(x, arch_fn())``, a new
    architecture for every minibatch).

    Schedules: ``cosine`` (to 0 over the run, per step), ``cosine_restarts`` (ENAS: SGDR per
    epoch from ``lr`` to ``lr_min``, periods ``lr_t0``·``lr_t_mul``^k), ``constant``. For ENAS's
    final training: ``aux_weight`` (the auxiliary head's loss weight, 0.4), ``aux_train_head``
    (false: the head keeps its initial weights and only the trunk learns from its loss, as
    ``micro_child.py`` ``_build_train`` leaves every ``aux_head`` variable out of the trained and
    l2-decayed list), ``drop_path`` (the
    final keep probability, reached linearly over training as in ``micro_child.py``),
    ``cutout`` (the side of the zeroed square, 16; DeVries & Taylor 2017) and ``grad_clip``.
    On a GPU: ``precision`` (``auto``: bf16 autocast on CUDA, fp32 on a CPU) and
    ``cudnn_benchmark`` (cuDNN's autotuner, for runs whose shapes repeat; ENAS's search turns it
    off, as each step draws new shapes)."""

    def __init__(self, model, data, epochs: Count, batch_size: Count = 128, lr: Positive = 0.1, momentum: NonNegative = 0.9,
                 nesterov: bool = True, weight_decay: NonNegative = 1e-4, schedule: str = "cosine",
                 augment: AugmentSpec = "auto", seed: int = 0, channels_last: bool = True,
                 lr_min: NonNegative = 0.0, lr_t0: Count = 10, lr_t_mul: Count = 2, aux_weight: NonNegative = 0.0,
                 aux_train_head: bool = True, drop_path: Fraction = 1.0, cutout: NonNegativeInt = 0,
                 cutout_at: str = "center",
                 grad_clip: Positive | None = None, precision: Precision = "auto", cudnn_benchmark: bool = True,
                 device: str | None = "auto", max_batches: Count | None = None):
        if schedule not in ("cosine", "cosine_restarts", "constant"):
            raise ValueError(f"training schedule must be 'cosine', 'cosine_restarts' or 'constant', not {schedule!r}")
        if epochs < 1 or batch_size < 1 or lr <= 0:
            raise ValueError(f"training needs epochs >= 1, batch_size >= 1 and lr > 0 (got {epochs}, {batch_size}, {lr})")
        if not 0 < drop_path <= 1 or cutout < 0 or aux_weight < 0:
            raise ValueError(f"training needs 0 < drop_path <= 1 (a keep probability), cutout >= 0 and "
                             f"aux_weight >= 0 (got {drop_path}, {cutout}, {aux_weight})")
        self.channels_last, self.device = channels_last, default_device(device)
        self.precision, self.cudnn_benchmark = precision_of(precision, self.device), cudnn_benchmark
        model = model.to(self.device)     # the data stay on the CPU; each batch is moved
        self.model = model.to(memory_format=torch.channels_last) if channels_last else model
        self.data, self.epochs, self.batch_size, self.lr, self.schedule = data, epochs, batch_size, lr, schedule
        self.restarts = (lr_min, lr_t0, lr_t_mul)
        self.aux_weight, self.drop_path, self.cutout, self.grad_clip = aux_weight, drop_path, cutout, grad_clip
        if cutout_at not in ("center", "corner"):
            raise ValueError(f"train.cutout_at must be 'center' (DeVries & Taylor) or 'corner' (the ENAS "
                             f"authors' models.py), not {cutout_at!r}")
        self.cutout_at = cutout_at
        self.max_batches = max_batches
        head = getattr(model, "aux_head", None)
        if head is not None and not aux_train_head:
            head.requires_grad_(False)      # still back-propagates its loss into the trunk
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.opt = torch.optim.SGD(self.params, lr=lr, momentum=momentum, nesterov=nesterov,
                                   weight_decay=weight_decay, foreach=True)    # one batched update, not one per tensor
        self.augment = make_augment(augment, data)
        # Zoph & Le's whitening replaces the per-channel normalisation, before the augmentation
        self.whitening = None
        if augment == "zoph_le":
            from ..data.images import ZCA
            zca = data.zca()
            self.whitening = ZCA(zca.mean.to(self.device), zca.matrix.to(self.device))
        self.generator = torch.Generator().manual_seed(seed)
        self.total_steps = epochs * self.batches_per_epoch()
        self.epoch = self.step = 0

    def _input(self, xb, generator: torch.Generator | None = None):
        """The network's input from a uint8 batch, augmented with ``generator`` when one is given
        (training): pad-and-crop on the uint8 images, then the per-channel normalisation; or
        Zoph & Le's order, whitening first, then the upsampling and crop (``zoph_le``)."""
        augment = self.augment if generator is not None else None
        if self.whitening is None:
            xb = xb if augment is None else augment(xb, generator)
            xb = self.data.normalize(xb).to(self.device, non_blocking=True)
        else:
            xb = self.whitening(xb.to(self.device, non_blocking=True).float().div_(255.0))
            xb = xb if augment is None else augment(xb, generator)
        return xb.contiguous(memory_format=torch.channels_last) if self.channels_last else xb

    def batches_per_epoch(self) -> int:
        n = math.ceil(len(self.data.train_y) / self.batch_size)
        return n if self.max_batches is None else min(n, self.max_batches)

    def train_epoch(self, arch_fn=None) -> dict:
        """One epoch (at most ``max_batches`` minibatches); ``arch_fn()``, if given, is the
        architecture of each minibatch. Returns mean loss, training accuracy, images, seconds and
        the learning rate, or a ``diverged`` reason."""
        from ..data.images import iterate_batches
        self.model.train()
        if self.device.type == "cuda":        # autotune only where shapes repeat (not ENAS's search)
            torch.backends.cudnn.benchmark = self.cudnn_benchmark
        losses, seen, t0 = StepLosses(), 0, time.perf_counter()
        correct = torch.zeros((), dtype=torch.long, device=self.device)    # summed on the device: no sync
        batches = iterate_batches(self.data.train_x, self.data.train_y, self.batch_size, self.generator)
        first, per_epoch = self.step, self.batches_per_epoch()
        for xb, yb in itertools.islice(batches, per_epoch):
            if self.schedule == "cosine":
                lr = cosine_lr(self.step, self.total_steps, self.lr)
            elif self.schedule == "cosine_restarts":
                lr = cosine_restart_lr(self.epoch, self.lr, *self.restarts)
            else:
                lr = self.lr
            for g in self.opt.param_groups:
                g["lr"] = lr
            if self.drop_path < 1:           # micro_child.py _apply_drop_path: min(1, (global_step + 1) / N)
                ratio = min(1.0, (self.step + 1) / self.total_steps)
                self.model.drop_path_keep_prob = 1 - (1 - self.drop_path) * ratio
            yb = yb.to(self.device, non_blocking=True)
            xb = self._input(xb, self.generator)
            if self.cutout:
                xb = cutout(xb, self.cutout, self.generator, self.cutout_at)
            self.opt.zero_grad(set_to_none=True)      # before the forward pass: the last step's gradients are freed
            with autocast(self.device, self.precision):
                out = self.model(xb) if arch_fn is None else self.model(xb, arch_fn())
                loss, logits = loss_with_aux(out, yb, self.aux_weight)
            loss.backward()
            if self.grad_clip:
                torch.nn.utils.clip_grad_norm_(self.params, self.grad_clip, foreach=True)
            self.opt.step()
            bad = losses.add(loss, len(yb), (self.epoch + 1, self.step + 1))    # read every READ_EVERY steps
            if bad:
                return {"diverged": bad}
            correct += (logits.argmax(1) == yb).sum()
            seen += len(yb)
            self.step += 1
            progress.step(self.step - first, per_epoch, seen, "img", time.perf_counter() - t0)
        bad = losses.read()
        if bad:
            return {"diverged": bad}
        self.epoch += 1
        return {"loss": losses.total / max(seen, 1), "train_acc": correct.item() / max(seen, 1), "images": seen,
                "seconds": time.perf_counter() - t0, "lr": self.opt.param_groups[0]["lr"]}

    @torch.no_grad()
    def accuracy(self, split: str = "valid", batch_size: int = 500) -> float:
        x, y = (self.data.valid_x, self.data.valid_y) if split == "valid" else (self.data.test_x, self.data.test_y)
        self.model.eval()
        correct = torch.zeros((), dtype=torch.long, device=self.device)       # one read-back, at the end
        with autocast(self.device, self.precision):
            for i in range(0, len(x), batch_size):
                labels = y[i:i + batch_size].to(self.device, non_blocking=True)
                correct += (self.model(self._input(x[i:i + batch_size])).argmax(1) == labels).sum()
        return correct.item() / max(len(x), 1)

    def state_dict(self) -> dict:
        return training_state(self)

    def load_state_dict(self, state: dict) -> None:
        load_training_state(self, state)
