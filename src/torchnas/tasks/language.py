"""Language modelling: the ENAS recurrent cell in a word-level model on Penn Treebank
(google-research enas_lm; the model is :class:`torchnas.nn.lm.LanguageModel`)."""
from __future__ import annotations

import time

import torch

from ..data.ptb import BPTTSampler
from ..registry import register
from ..runs import RunDir, RunError
from ..settings import Count, NonNegative, Positive, checked
from ..training import LMTraining, arch_seed, run_epochs
from ..training.device import Precision, autocast, wide_dtype
from .base import SharedWeights, Task

PTB_VOCAB = 10000      # Penn Treebank's vocabulary: the dry run builds the model without the corpus


@register("task", "language-modeling")
class LanguageModeling(Task):
    name = "language-modeling"
    Training = LMTraining
    network = "language_model"
    network_fixed = ("arch", "vocab_size")

    def check_exportable(self, space, arch) -> None:
        pass

    def describe(self, space, arch, data: dict, net: dict, where: str = "evaluator.data") -> dict:
        from ..data.ptb import load_ptb
        checked(where, load_ptb, data)                      # typed, not loaded
        model = space.language_model(arch, PTB_VOCAB, **net)
        arc = {"arc": space.to_arc(arch)} if hasattr(space, "to_arc") else {}         # the authors' arc format, where the space has one
        return {"arch": str(arch), **arc, "params": sum(p.numel() for p in model.parameters()),
                "cell_params": sum(p.numel() for p in model.cell.parameters()),
                "embedding_params": model.embedding.numel(), "vocab": PTB_VOCAB, "net": net,
                **({"arithmetic": space.parameter_arithmetic(PTB_VOCAB, net)[1]} if hasattr(space, "parameter_arithmetic") else {})}

    def retrain(self, run, cfg: dict, space, arch, on_epoch=None) -> dict:
        """Valid and test perplexity, exact (:func:`torchnas.training.perplexity`); the saved
        weights are the evaluated ones (the NT-ASGD average once averaging started)."""
        from ..data.ptb import load_ptb_cached
        corpus = load_ptb_cached(dict(cfg["data"]))
        seed = arch_seed(cfg["seed"], arch)
        torch.manual_seed(seed)
        net = dict(cfg.get("net") or {})
        model = space.language_model(arch, len(corpus), **net)
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
                  "cell": net.get("cell", _default_cell(space)), "hidden_size": model.hidden_size,
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


SAMPLE_CHUNK = 64     # cells drawn at once for the shared phase's windows (unused ones are discarded)


class LMSharedWeights(SharedWeights):
    """ENAS's shared weights for the recurrent cell on a word-level corpus (google-research
    ``enas_lm`` ``search.py``, ``child.py``; values in the ``enas-rnn`` preset).

    Shared phase: one pass over the training stream in BPTT windows with a new cell sampled for
    every window, the hidden state carried across windows (:class:`LMTraining`: SGD lr 20 scaled
    by the window length, dropouts, slowness ``beta``, clipping 0.1). Reward: ``reward_constant /
    ppl`` (80 / ppl) on the next window of the validation stream (``reward_batch`` × ``bptt``
    tokens, evaluation mode, zero initial state: the reference resets the state after every
    controller step); the windows cycle through the validation split."""

    metric = "valid_ppl"
    default_train_steps = 25

    def __init__(self, space, data: dict, seed: int = 0, epochs: int = 10, net: dict | None = None,
                 batch_size: Count = 128, bptt: Count = 35, variable_bptt: bool = True,
                 bptt_sampler: BPTTSampler = "awd-lstm", lr: Positive = 20.0,
                 grad_clip: Positive | None = 0.1, weight_decay: NonNegative = 0.0, alpha: NonNegative = 0.0, beta: NonNegative = 1.0,
                 reward_batch: Count | None = None, reward_constant: Positive = 80.0,
                 precision: Precision = "auto", max_train_batches: Count | None = None, device: str | None = "auto"):
        from ..data.ptb import batchify, load_ptb, load_ptb_cached
        from ..training.device import fix_heap_threshold
        net = LanguageModeling().check_net_settings(space, net, "enas.net")
        data = checked("enas.data", load_ptb, data)
        if reward_constant <= 0:
            raise ValueError(f"ENAS needs reward_constant > 0, got {reward_constant}")
        self.reward_constant = reward_constant
        torch.manual_seed(seed)
        fix_heap_threshold()             # before the shared weights: their freed buffers go back (peak -0.1 GB)
        self.corpus = load_ptb_cached(dict(data))
        self.training = LMTraining(space.language_model(None, len(self.corpus), **net), self.corpus, epochs=epochs,
                                   batch_size=batch_size, bptt=bptt, variable_bptt=variable_bptt,
                                   bptt_sampler=bptt_sampler, lr=lr,
                                   grad_clip=grad_clip, weight_decay=weight_decay, alpha=alpha, beta=beta,
                                   max_batches=max_train_batches, seed=seed, precision=precision, device=device)
        self.opt = self.training.opt
        self.bptt, self.reward_batch = bptt, reward_batch or batch_size
        if len(self.corpus.valid) < 2 * self.reward_batch:
            raise ValueError(f"the validation split ({len(self.corpus.valid)} tokens) is too short for "
                             f"reward_batch {self.reward_batch} streams: lower enas.reward_batch")
        self.valid = batchify(self.corpus.valid, self.reward_batch).to(self.training.device)
        self.valid_windows = max(1, (len(self.valid) - 1) // bptt)
        self.valid_pos = 0
        self.generator = torch.Generator().manual_seed(seed)

    def metric_of(self, reward: float) -> float:
        return self.reward_constant / reward

    def train_epoch(self, sample) -> dict:
        """One pass over the training stream, each window with its own cell; the cells are drawn
        ``SAMPLE_CHUNK`` at a time (``sample(n)``: one controller pass for many windows, where
        one per window cost a pass of small operations per step; issue 31)."""
        cells: list = []

        def next_cell():
            if not cells:
                cells.extend(reversed(sample(SAMPLE_CHUNK)))
            return cells.pop()
        out = self.training.train_epoch(next_cell)
        if "diverged" in out:
            raise RunError(f"shared-weight training diverged: {out['diverged']}; lower enas.lr or enas.grad_clip")
        return {"lr": out["lr"], "loss": out["loss"], "train_ppl": out["train_ppl"], "tokens": out["tokens"],
                "tokens_per_s": round(out["tokens_per_s"], 1), "shared_seconds": out["seconds"]}

    def valid_batch(self):
        i = self.valid_pos * self.bptt
        n = min(self.bptt, len(self.valid) - 1 - i)
        self.valid_pos = (self.valid_pos + 1) % self.valid_windows
        return self.valid[i:i + n], self.valid[i + 1:i + 1 + n]

    @torch.no_grad()
    def reward_tensor(self, arch, batch) -> torch.Tensor:
        """``reward_constant`` / perplexity of ``arch`` on one validation window (on the device,
        in float64: a perplexity of e^700 still gives a reward above 0)."""
        x, y = batch
        self.net.eval()
        with autocast(self.training.device, self.training.precision):
            ce = self.net(x, None, arch).cross_entropy(y)
        return self.reward_constant / torch.exp(ce.to(wide_dtype(ce.device)).clamp(max=700.0))

    def extra_state(self):
        return {"valid_pos": self.valid_pos, "bptt_generator": self.training.generator.get_state(),
                "step": self.training.step}

    def load_extra_state(self, state, epoch: int) -> None:
        self.valid_pos = state["valid_pos"]
        self.training.generator.set_state(state["bptt_generator"])
        self.training.step, self.training.epoch = state["step"], epoch


LanguageModeling.SharedWeights = LMSharedWeights


def _default_cell(space) -> str:
    """The cell a space's language model runs unless ``final_net.cell`` names a baseline: the
    space's ``searched_cell`` (``enas``), or its own name for a space with one kind of cell."""
    return getattr(space, "searched_cell", space.name)
