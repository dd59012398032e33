"""Retrain a found architecture from scratch and report its test accuracy (``torchnas train``).

A retraining run directory holds ``config.yaml`` (architecture, space, data, settings),
``history.jsonl`` (one line per epoch: loss, validation accuracy, lr, seconds),
``checkpoint.pt`` (model, optimizer, RNG; atomic, every epoch), and at the end
``result.json`` (test accuracy, parameters, FLOPs) and ``model.pt`` (the trained weights).
``--resume`` continues from the last finished epoch and gives the same result as an
uninterrupted run.
"""
from __future__ import annotations

import time
from typing import Callable

import torch

from .nn import count_flops
from .evaluators.trainer import Training, arch_seed, load_data_cached
from .runs import RunDir, RunError
from .spaces import space_from_config

HISTORY, RESULT, MODEL = "history.jsonl", "result.json", "model.pt"
TRAIN_KEYS = {"epochs", "batch_size", "lr", "momentum", "nesterov", "weight_decay", "schedule", "augment",
              "channels_last", "lr_min", "lr_t0", "lr_t_mul", "aux_weight", "drop_path", "cutout", "grad_clip"}


def train_config(arch: str, space: dict, data: dict, settings: dict, seed: int = 0, net: dict | None = None) -> dict:
    """``net``: keyword arguments of ``space.child`` (channels, cells, auxiliary head, ...)."""
    unknown = set(settings) - TRAIN_KEYS
    if unknown:
        raise ValueError(f"train settings {sorted(unknown)} are unknown; allowed: {sorted(TRAIN_KEYS)}")
    return {"kind": "train", "arch": arch, "space": space, "data": data, "net": dict(net or {}),
            "train": settings, "seed": seed}


def retrain(run: RunDir, on_epoch: Callable[[dict], None] | None = None) -> dict:
    """Train (or continue training) the run's architecture; returns ``result.json``."""
    cfg = run.config()
    if cfg.get("kind") != "train":
        raise RunError(f"{run.path} is not a retraining run (its config has no 'kind: train')")
    done = run.read_json(RESULT)
    if done is not None:
        return done
    space = space_from_config(cfg["space"])
    arch = space.parse(cfg["arch"])
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
    ckpt = run.load_checkpoint()
    if ckpt is not None:
        training.load_state_dict(ckpt["training"])
    history = run.read_jsonl(HISTORY, keep=training.epoch)
    while training.epoch < training.epochs:
        out = training.train_epoch()
        if "diverged" in out:
            raise RunError(f"training diverged: {out['diverged']}; lower train.lr or check the data")
        rec = {"epoch": training.epoch, "loss": out["loss"], "valid_acc": training.accuracy("valid"),
               "lr": out["lr"], "seconds": round(out["seconds"], 3)}
        history.append(rec)
        run.append_jsonl(HISTORY, rec)
        run.save_checkpoint({"training": training.state_dict()})
        if on_epoch is not None:
            on_epoch(rec)
    result = {"arch": cfg["arch"], "test_acc": training.accuracy("test"),
              "valid_acc": history[-1]["valid_acc"], "epochs": training.epochs,
              "params": sum(p.numel() for p in model.parameters()), "flops": count_flops(model, data.shape),
              "train_seconds": round(sum(h["seconds"] for h in history), 2),
              "data": data.name, "test_images": len(data.test_y), "finished": time.strftime("%Y-%m-%d %H:%M:%S")}
    torch.save(training.model.state_dict(), run.path / MODEL)
    run.write_json(RESULT, result)
    return result
