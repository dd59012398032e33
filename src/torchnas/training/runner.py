"""Train a retraining run's network to its last epoch, one checkpointed epoch at a time."""
from __future__ import annotations

from ..runs import RunDir, RunError


def run_epochs(run: RunDir, training, record, on_epoch) -> list[dict]:
    """Continue ``training`` from the run's checkpoint to its last epoch: per epoch one
    ``history.jsonl`` line (``record(train_epoch output)``) and an atomic checkpoint."""
    run.load_checkpoint("train", restore=lambda ckpt: training.load_state_dict(ckpt["training"]))
    history = run.restore({RunDir.HISTORY: training.epoch})[RunDir.HISTORY]
    while training.epoch < training.epochs:
        out = training.train_epoch()
        if "diverged" in out:
            raise RunError(f"training diverged: {out['diverged']}; lower train.lr (or set train.grad_clip)")
        rec = {"epoch": training.epoch, **record(out)}
        history.append(rec)
        run.append_jsonl(RunDir.HISTORY, rec)
        run.save_checkpoint({"training": training.state_dict()}, "train")
        if on_epoch is not None:
            on_epoch(rec)
    return history
