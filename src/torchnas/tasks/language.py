"""Language modelling: the ENAS recurrent cell in a word-level model on Penn Treebank
(google-research enas_lm; the model is :class:`torchnas.nn.lm.LanguageModel`)."""
from __future__ import annotations

import time

import torch

from ..registry import register
from ..runs import RunDir, RunError
from ..training import LMTraining, arch_seed, run_epochs
from .base import Task

PTB_VOCAB = 10000      # Penn Treebank's vocabulary: the dry run builds the model without the corpus


@register("task", "language-modeling")
class LanguageModeling(Task):
    name = "language-modeling"
    train_keys = frozenset({"epochs", "batch_size", "bptt", "variable_bptt", "lr", "grad_clip", "weight_decay",
                            "alpha", "beta", "average", "nonmono", "eval_batch_size", "test_batch_size",
                            "max_batches", "device"})

    def check_exportable(self, space, arch) -> None:
        pass

    def describe(self, space, arch, data: dict, net: dict) -> dict:
        model = space.language_model(arch, PTB_VOCAB, **net)
        return {"arch": str(arch), "arc": space.to_arc(arch), "params": sum(p.numel() for p in model.parameters()),
                "cell_params": sum(p.numel() for p in model.cell.parameters()),
                "embedding_params": model.embedding.numel(), "vocab": PTB_VOCAB, "net": net}

    def retrain(self, run, cfg: dict, space, arch, on_epoch=None) -> dict:
        """Valid and test perplexity, exact (:func:`torchnas.training.perplexity`); the saved
        weights are the evaluated ones (the NT-ASGD average once averaging started)."""
        from ..data.ptb import load_ptb_cached
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
        history = run_epochs(run, training, record, on_epoch)
        valid, test = training.evaluate("valid"), training.evaluate("test")
        result = {"arch": cfg["arch"], "valid_ppl": valid["ppl"], "test_ppl": test["ppl"], "epochs": training.epochs,
                  "params": sum(p.numel() for p in model.parameters()), "test_tokens": test["tokens"],
                  "cell": net.get("cell", "enas"), "hidden_size": model.hidden_size,
                  "train_seconds": round(sum(h["seconds"] for h in history), 2),
                  "data": "ptb", "finished": time.strftime("%Y-%m-%d %H:%M:%S")}
        training.swap_average()        # save the weights that were evaluated
        torch.save(training.model.state_dict(), run.path / RunDir.MODEL)
        training.swap_average()
        return result

    def export_network(self, space, arch, cfg: dict, net: dict, state: dict, out):
        model = space.language_model(arch, state["embedding"].shape[0], **net)
        length = int((cfg.get("train") or {}).get("bptt", 35))
        example = (torch.randint(0, model.vocab_size, (length, 2), generator=torch.Generator().manual_seed(0)),)
        return model, example, {"vocab": _write_vocab(cfg["data"], out, model.vocab_size)}


def _write_vocab(data_cfg: dict, out, size: int) -> str:
    """``out/vocab.txt``, the corpus vocabulary (token id = line number), where the corpus loads."""
    from ..data.ptb import load_ptb_cached
    try:
        vocab = load_ptb_cached(dict(data_cfg)).vocab
    except Exception as e:                                        # noqa: BLE001 (data not here)
        return f"vocab.txt not written: the corpus did not load ({e})"
    if len(vocab) != size:
        return f"vocab.txt not written: the corpus has {len(vocab)} words, the model {size}"
    out.mkdir(parents=True, exist_ok=True)
    (out / "vocab.txt").write_text("".join(w + "\n" for w in vocab))
    return "vocab.txt: token id = line number (from 0)"
