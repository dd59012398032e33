"""Image classification: the CNN spaces (NAS-RL, ENAS macro and micro, NAS-Bench-201)."""
from __future__ import annotations

import time

import torch

from ..data.images import load_data_cached
from ..nn import count_flops
from ..registry import register
from ..runs import RunDir, RunError
from ..training import Training, arch_seed, run_epochs
from .base import Task

# input shape and classes of the named data sets, for building a network without its data
IMAGE_SHAPES = {"digits": ((1, 8, 8), 10), "cifar10": ((3, 32, 32), 10)}


@register("task", "image-classification")
class ImageClassification(Task):
    name = "image-classification"
    train_keys = frozenset({"epochs", "batch_size", "lr", "momentum", "nesterov", "weight_decay", "schedule",
                            "augment", "channels_last", "lr_min", "lr_t0", "lr_t_mul", "aux_weight", "drop_path",
                            "cutout", "grad_clip", "device"})

    def describe(self, space, arch, data: dict, net: dict) -> dict:
        (c, h, w), k = IMAGE_SHAPES.get(data.get("name"), ((3, 32, 32), 10))
        model = space.child(arch, c, k, **net)
        return {"arch": str(arch), "params": sum(p.numel() for p in model.parameters()),
                "aux_params": sum(p.numel() for n, p in model.named_parameters() if "aux" in n),
                "input": (c, h, w), "classes": k, "net": net}

    def retrain(self, run, cfg: dict, space, arch, on_epoch=None) -> dict:
        data = load_data_cached(cfg["data"])
        seed = arch_seed(cfg["seed"], arch)
        torch.manual_seed(seed)
        net = dict(cfg.get("net") or {})
        if net.get("aux_head"):
            net.setdefault("image_size", data.shape[1])
        try:
            model = space.child(arch, data.shape[0], data.num_classes, **net)
        except TypeError as e:   # a network setting this space does not take
            raise RunError(f"{run.path}: final_net settings {net} do not fit space {space.name!r}: {e}") from None
        training = Training(model, data, seed=seed, **cfg["train"])
        history = run_epochs(run, training, lambda out: {
            "loss": out["loss"], "valid_acc": training.accuracy("valid"), "lr": out["lr"],
            "seconds": round(out["seconds"], 3)}, on_epoch)
        result = {"arch": cfg["arch"], "test_acc": training.accuracy("test"),
                  "valid_acc": history[-1]["valid_acc"], "epochs": training.epochs,
                  "params": sum(p.numel() for p in model.parameters()), "flops": count_flops(model, data.shape),
                  "train_seconds": round(sum(h["seconds"] for h in history), 2),
                  "data": data.name, "test_images": len(data.test_y), "finished": time.strftime("%Y-%m-%d %H:%M:%S")}
        torch.save(training.model.state_dict(), run.path / RunDir.MODEL)
        return result

    def export_network(self, space, arch, cfg: dict, net: dict, state: dict, out):
        shape, classes, info = _image_data(cfg["data"])
        if net.get("aux_head"):
            net.setdefault("image_size", shape[1])
        model = space.child(arch, shape[0], classes, **net)
        example = (torch.randn((2,) + tuple(shape), generator=torch.Generator().manual_seed(0)),)
        return model, example, {"input": info}


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
