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
from .evaluators.trainer import arch_seed, load_data_cached
from .training import Training
from .runs import RunDir, RunError, run_kind
from .spaces import space_from_config

HISTORY, RESULT, MODEL = RunDir.HISTORY, RunDir.RESULT, RunDir.MODEL
LM_TRAIN_KEYS = {"epochs", "batch_size", "bptt", "variable_bptt", "lr", "grad_clip", "weight_decay", "alpha", "beta",
                 "average", "nonmono", "eval_batch_size", "test_batch_size", "max_batches", "device"}
TRAIN_KEYS = {"epochs", "batch_size", "lr", "momentum", "nesterov", "weight_decay", "schedule", "augment",
              "channels_last", "lr_min", "lr_t0", "lr_t_mul", "aux_weight", "drop_path", "cutout", "grad_clip",
              "device"}


def train_config(arch: str, space: dict, data: dict, settings: dict, seed: int = 0, net: dict | None = None) -> dict:
    """``net``: keyword arguments of ``space.child`` (channels, cells, auxiliary head, ...), or
    for the enas-rnn space of ``space.language_model`` (hidden size, dropouts, cell)."""
    keys = LM_TRAIN_KEYS if space.get("name") == "enas-rnn" else TRAIN_KEYS
    unknown = set(settings) - keys
    if unknown:
        raise ValueError(f"train settings {sorted(unknown)} are unknown; allowed: {sorted(keys)}")
    return {"kind": "train", "arch": arch, "space": space, "data": data, "net": dict(net or {}),
            "train": settings, "seed": seed}


def _run_epochs(run: RunDir, training, record, on_epoch) -> list[dict]:
    """Continue ``training`` from the run's checkpoint to its last epoch: per epoch one
    ``history.jsonl`` line (``record(train_epoch output)``) and an atomic checkpoint."""
    ckpt = run.load_checkpoint()
    if ckpt is not None:
        training.load_state_dict(ckpt["training"])
    history = run.restore({HISTORY: training.epoch})[HISTORY]
    while training.epoch < training.epochs:
        out = training.train_epoch()
        if "diverged" in out:
            raise RunError(f"training diverged: {out['diverged']}; lower train.lr (or set train.grad_clip)")
        rec = {"epoch": training.epoch, **record(out)}
        history.append(rec)
        run.append_jsonl(HISTORY, rec)
        run.save_checkpoint({"training": training.state_dict()})
        if on_epoch is not None:
            on_epoch(rec)
    return history


def retrain(run: RunDir, on_epoch: Callable[[dict], None] | None = None) -> dict:
    """Train (or continue training) the run's architecture; returns ``result.json``."""
    cfg = run.config()
    if run_kind(cfg) != "train":
        raise RunError(f"{run.path} is not a retraining run (its config has no 'kind: train')")
    done = run.read_json(RESULT)
    if done is not None:
        return done
    space = space_from_config(cfg["space"])
    arch = space.parse(cfg["arch"])
    if space.name == "enas-rnn":
        return retrain_lm(run, cfg, space, arch, on_epoch)
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
    history = _run_epochs(run, training, lambda out: {
        "loss": out["loss"], "valid_acc": training.accuracy("valid"), "lr": out["lr"],
        "seconds": round(out["seconds"], 3)}, on_epoch)
    result = {"arch": cfg["arch"], "test_acc": training.accuracy("test"),
              "valid_acc": history[-1]["valid_acc"], "epochs": training.epochs,
              "params": sum(p.numel() for p in model.parameters()), "flops": count_flops(model, data.shape),
              "train_seconds": round(sum(h["seconds"] for h in history), 2),
              "data": data.name, "test_images": len(data.test_y), "finished": time.strftime("%Y-%m-%d %H:%M:%S")}
    torch.save(training.model.state_dict(), run.path / MODEL)
    run.write_json(RESULT, result)
    return result


def retrain_lm(run: RunDir, cfg: dict, space, arch, on_epoch=None) -> dict:
    """Train the language model of a recurrent cell; ``result.json`` has valid and test
    perplexity (exact, :func:`torchnas.training.perplexity`)."""
    from .data.ptb import load_ptb_cached
    from .training import LMTraining
    corpus = load_ptb_cached(dict(cfg["data"]))
    seed = arch_seed(cfg["seed"], arch)
    torch.manual_seed(seed)
    net = dict(cfg.get("net") or {})
    try:
        model = space.language_model(arch, len(corpus), **net)
    except TypeError as e:
        raise RunError(f"{run.path}: final_net settings {net} do not fit space {space.name!r}: {e}") from None
    training = LMTraining(model, corpus, seed=seed, **cfg["train"])

    def record(out):
        valid = training.evaluate("valid")["ppl"]
        return {"loss": out["loss"], "train_ppl": out["train_ppl"], "valid_ppl": valid, "lr": out["lr"],
                "averaging": training.end_epoch(valid), "tokens_per_s": round(out["tokens_per_s"], 1),
                "seconds": round(out["seconds"], 3)}
    history = _run_epochs(run, training, record, on_epoch)
    valid, test = training.evaluate("valid"), training.evaluate("test")
    result = {"arch": cfg["arch"], "valid_ppl": valid["ppl"], "test_ppl": test["ppl"], "epochs": training.epochs,
              "params": sum(p.numel() for p in model.parameters()), "test_tokens": test["tokens"],
              "cell": net.get("cell", "enas"), "hidden_size": model.hidden_size,
              "train_seconds": round(sum(h["seconds"] for h in history), 2),
              "data": "ptb", "finished": time.strftime("%Y-%m-%d %H:%M:%S")}
    training.swap_average()        # save the weights that were evaluated
    torch.save(training.model.state_dict(), run.path / MODEL)
    training.swap_average()
    run.write_json(RESULT, result)
    return result
