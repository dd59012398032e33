"""Image classification: the CNN spaces (NAS-RL, ENAS macro and micro, NAS-Bench-201)."""
from __future__ import annotations

import contextlib
import inspect
import time

import torch

from ..data.images import load_data_cached, load_image_data
from ..nn import Whitened, count_flops
from ..registry import register
from ..runs import RunDir, RunError
from ..settings import Count, NonNegative, Positive, checked
from ..training import Training, arch_seed, run_epochs
from ..training.device import Precision, autocast
from ..training.images import AugmentSpec
from .base import SharedWeights, Task

# input shape and classes of the named data sets, for building a network without its data
IMAGE_SHAPES = {"digits": ((1, 8, 8), 10), "cifar10": ((3, 32, 32), 10)}


@register("task", "image-classification")
class ImageClassification(Task):
    name = "image-classification"
    Training = Training
    network_fixed = ("arch", "in_channels", "num_classes")

    def describe(self, space, arch, data: dict, net: dict, where: str = "evaluator.data") -> dict:
        data = checked(where, load_image_data, data)       # typed, not loaded
        (c, h, w), k = IMAGE_SHAPES.get(data.get("name"), ((3, 32, 32), 10))
        model = space.child(arch, c, k, **_sized(net, h))
        out = {"arch": str(arch), "params": sum(p.numel() for p in model.parameters()),
               "aux_params": sum(p.numel() for n, p in model.named_parameters() if "aux" in n),
               "input": (c, h, w), "classes": k, "net": net, "layers": space.layer_counts(arch)}
        out["notes"] = space.network_notes(arch, net, lambda **changes: sum(
            p.numel() for p in space.child(arch, c, k, **_sized({**net, **changes}, h)).parameters()))
        return out

    def retrain(self, run, cfg: dict, space, arch, on_epoch=None) -> dict:
        data = load_data_cached(cfg["data"])
        seed = arch_seed(cfg["seed"], arch)
        torch.manual_seed(seed)
        net = _sized(cfg.get("net") or {}, data.shape[1])
        model = space.child(arch, data.shape[0], data.num_classes, **net)
        training = Training(model, data, seed=seed, **cfg["train"])
        if training.whitening is not None:
            _keep_whitening(run, training)
        history = run_epochs(run, training, lambda out: {
            "loss": out["loss"], "valid_acc": training.accuracy("valid"), "lr": out["lr"],
            "seconds": round(out["seconds"], 3)}, on_epoch)
        result = {"arch": cfg["arch"], "test_acc": training.accuracy("test"),
                  "valid_acc": history[-1]["valid_acc"], "epochs": training.epochs,
                  "params": sum(p.numel() for p in model.parameters()), "flops": count_flops(model, data.shape),
                  "train_seconds": round(sum(h["seconds"] for h in history), 2),
                  "data": data.name, "test_images": len(data.test_y), "finished": time.strftime("%Y-%m-%d %H:%M:%S")}
        torch.save(_saved(training).state_dict(), run.path / RunDir.MODEL)
        return result

    def export_network(self, space, arch, cfg: dict, net: dict, state: dict, out):
        shape, classes, info = _image_data(cfg["data"])
        model = space.child(arch, shape[0], classes, **_sized(net, shape[1]))
        example = (torch.randn((2,) + tuple(shape), generator=torch.Generator().manual_seed(0)),)
        if "matrix" in state:                 # trained on whitened images: the whitening is exported too
            d = state["matrix"].shape[0]
            model = Whitened(model, torch.zeros(d), torch.zeros(d, d))
            example = (torch.rand((2,) + tuple(shape), generator=torch.Generator().manual_seed(0)),)
            info = {**info, "normalize": {"x": "x_uint8 / 255; the network whitens it (ZCA of the training "
                                               "split, Zoph & Le 2017 §4.1: buffers mean and matrix)"}}
        return model, example, {"input": info}


def _keep_whitening(run, training) -> None:
    """The retraining's whitening, stored with the run (``whitening.pt``) when it starts and read
    back when it resumes, so the run and its export apply one transform."""
    from ..data.images import ZCA
    from ..runs import atomic_write
    path = run.path / RunDir.WHITENING
    if path.exists():
        d = training.whitening.mean.numel()
        try:
            stored = torch.load(path, map_location="cpu", weights_only=True)
            ok = stored["mean"].shape == (d,) and stored["matrix"].shape == (d, d)
        except Exception as e:                                  # noqa: BLE001 (any damage: one line)
            raise RunError(f"{path} is not a whitening this run wrote ({type(e).__name__}: {e}); delete it to "
                           f"fit the whitening again from the training split") from None
        if not ok:
            raise RunError(f"{path} whitens images of another size than this run's data ({d:,} values); "
                           f"delete it to fit the whitening again from the training split")
        training.whitening = ZCA(stored["mean"].to(training.device), stored["matrix"].to(training.device))
    else:
        state = {k: v.cpu() for k, v in training.whitening.state_dict().items()}
        atomic_write(path, lambda f: torch.save(state, f))


def _saved(training):
    """What ``model.pt`` holds: the network, behind its whitening where it was trained on one."""
    w = training.whitening
    return training.model if w is None else Whitened(training.model, w.mean, w.matrix)


def _sized(net: dict, size: int) -> dict:
    """``net`` with the auxiliary head, if any, built for ``size`` x ``size`` images (unless it
    names its own ``image_size``)."""
    return {"image_size": size, **net} if net.get("aux_head") else dict(net)


def _image_data(data_cfg: dict):
    """(C, H, W), number of classes and, where the data loads, its normalisation and classes."""
    try:
        data = load_data_cached(dict(data_cfg))
    except Exception as e:                                        # noqa: BLE001 (data not here)
        if data_cfg.get("name") not in IMAGE_SHAPES:
            raise RunError(f"the run's input shape comes from its data set, which does not load: {e}") from None
        shape, k = IMAGE_SHAPES[data_cfg["name"]]
        return shape, k, {"normalize": f"unknown: the data did not load ({e})"}
    info = {"normalize": {"x": "(x_uint8 / 255 - mean) / std, per channel",
                          "mean": [float(v) for v in data.mean], "std": [float(v) for v in data.std]},
            "classes": list(data.classes)}
    return data.shape, data.num_classes, info


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


def _shared_settings(space, net: dict | None) -> dict:
    """``enas.net`` checked against the space's shared-weight builder (its settings may differ
    from the child's); a builder that passes ``**kw`` on to the child's is checked as the child."""
    shared = type(space).shared
    if any(p.kind is p.VAR_KEYWORD for p in inspect.signature(shared).parameters.values()):
        return ImageClassification().check_net_settings(space, net, "enas.net")
    return checked("enas.net", shared, net, fixed=("in_channels", "num_classes"))


class ImageSharedWeights(SharedWeights):
    """ENAS's shared weights ω on images (macro and micro spaces, NAS-Bench-201): one pass over
    the training split per epoch, a sampled architecture per minibatch, SGD with Nesterov
    momentum, l2 weight decay, gradient-norm clipping and cosine restarts (T0 = 10, Tmul = 2:
    ``src/cifar10/main.py``, ``src/utils.py``); the reward of an architecture is its accuracy with
    ω on one validation minibatch (``valid_rl`` in the authors' children)."""

    def __init__(self, space, data: dict, seed: int = 0, epochs: int = 10, net: dict | None = None,
                 batch_size: Count = 128, lr_max: Positive = 0.05, lr_min: NonNegative = 0.0005, lr_t0: Count = 10,
                 lr_t_mul: Count = 2, momentum: NonNegative = 0.9, nesterov: bool = True, weight_decay: NonNegative = 1e-4,
                 grad_clip: Positive | None = 5.0, augment: AugmentSpec = "auto", aux_weight: NonNegative = 0.0,
                 aux_train_head: bool = True, reward_batch: Count | None = None, reward_bn: str = "train",
                 channels_last: bool = True, precision: Precision = "auto", cudnn_benchmark: bool = False,
                 max_train_batches: Count | None = None, device: str | None = "auto"):
        if reward_bn not in ("train", "eval"):
            raise ValueError(f"reward_bn must be 'train' (minibatch statistics) or 'eval', not {reward_bn!r}")
        net = _shared_settings(space, net)
        self.data = load_data_cached(checked("enas.data", load_image_data, data))
        self.batch_size, self.reward_bn = batch_size, reward_bn
        self.reward_batch = reward_batch or batch_size
        torch.manual_seed(seed)
        net = _sized(net, self.data.shape[1])
        # the shared phase is the one image training loop, with a new architecture per minibatch
        self.training = Training(space.shared(self.data.shape[0], self.data.num_classes, **net), self.data,
                                 epochs=epochs, batch_size=batch_size, lr=lr_max, momentum=momentum,
                                 nesterov=nesterov, weight_decay=weight_decay, schedule="cosine_restarts",
                                 augment=augment, seed=seed, channels_last=channels_last, lr_min=lr_min,
                                 lr_t0=lr_t0, lr_t_mul=lr_t_mul, aux_weight=aux_weight, aux_train_head=aux_train_head,
                                 grad_clip=grad_clip, precision=precision, cudnn_benchmark=cudnn_benchmark,
                                 device=device, max_batches=max_train_batches)
        self.opt, self.generator, self.device = self.training.opt, self.training.generator, self.training.device

    def train_epoch(self, sample) -> dict:
        """One pass over the training split (:meth:`Training.train_epoch`); ``sample(n)`` gives
        the n architectures of the epoch's minibatches, drawn at once before the pass."""
        archs = iter(sample(self.training.batches_per_epoch()))
        progress = getattr(self.net, "set_progress", None)      # a shared network with a schedule of its own
        if progress is not None:
            progress(self.training.epoch / self.training.epochs)
        out = self.training.train_epoch(lambda: next(archs))
        if "diverged" in out:
            raise RunError(f"shared-weight training diverged: {out['diverged']}; lower enas.lr_max "
                           f"(or enas.grad_clip)")
        return {"lr": out["lr"], "loss": out["loss"], "train_acc": out["train_acc"], "images": out["images"],
                "shared_seconds": out["seconds"]}

    def valid_batch(self):
        idx = torch.randperm(len(self.data.valid_y), generator=self.generator)[:self.reward_batch]
        return self.training._input(self.data.valid_x[idx]), self.data.valid_y[idx].to(self.device)

    @torch.no_grad()
    def reward_tensor(self, arch, batch) -> torch.Tensor:
        """Accuracy of ``arch`` with the shared weights on one validation minibatch (on the device)."""
        x, y = batch
        aux = getattr(self.net, "compute_aux", None)
        if aux is not None:
            self.net.compute_aux = False      # the auxiliary head's output would be discarded
        try:
            with autocast(self.device, self.training.precision):
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
        return (logits.argmax(1) == y).float().mean()



ImageClassification.SharedWeights = ImageSharedWeights
