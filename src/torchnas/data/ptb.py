"""Penn Treebank (Mikolov's word-level preprocessing) for the ENAS recurrent cell.

Reads ``ptb.train.txt``, ``ptb.valid.txt`` and ``ptb.test.txt`` from a directory (``--data-dir``
root's ``ptb/``, or a path): every line becomes its words followed by ``<eos>``, the vocabulary
is built from the training split (10,000 words with ``<unk>`` and ``<eos>``; sorted, as the
google-research ``enas_lm`` data utilities do), and each split is one token stream laid out as
``batch_size`` parallel streams (``batchify``). BPTT windows are fixed or, as in AWD-LSTM and
``enas_lm``'s search, of random length around ``bptt`` (``bptt_windows(variable=True)``).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

import torch

from .paths import DataFormatError, find

SPLITS = ("train", "valid", "test")
BPTTSampler = Literal["awd-lstm", "enas-lm"]      # the random window length's law (bptt_windows)
BPTT_SAMPLERS = get_args(BPTTSampler)
PTB_HOW = ("Penn Treebank is the three files ptb.train.txt, ptb.valid.txt, ptb.test.txt "
           "(Mikolov's preprocessing); put them in <data root>/ptb/ or pass --data-dir.")


@dataclass
class Corpus:
    vocab: list[str]                  # index -> word
    index: dict[str, int]             # word -> index
    train: torch.Tensor               # int64 token streams
    valid: torch.Tensor
    test: torch.Tensor

    def __len__(self) -> int:
        return len(self.vocab)


def _read(path: Path) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise DataFormatError(f"{path}: not UTF-8 text ({e}); expected the PTB text files. {PTB_HOW}") from None
    words, seen = [], {"<eos>": "<eos>"}
    for line in text.splitlines():      # one string object per distinct word: a million separate
        words += [seen.setdefault(w, w) for w in line.split()] + ["<eos>"]  # ones fragment the heap
    if not words:
        raise DataFormatError(f"{path} is empty; expected one sentence per line. {PTB_HOW}")
    return words


def load_ptb(data_dir=None, path=None, train_tokens: int | None = None, name: str = "ptb") -> Corpus:
    """The corpus from ``path`` (a folder with the three files) or ``<data root>/ptb``;
    ``train_tokens`` keeps only the first that many training tokens (CPU-sized runs; the
    vocabulary is still that of the whole training file)."""
    if name != "ptb":
        raise ValueError(f"language-model data must be 'ptb' (Penn Treebank layout), not {name!r}")
    if train_tokens is not None and train_tokens < 2:
        raise ValueError(f"train_tokens must be >= 2 or null, got {train_tokens!r}")
    root = Path(path).expanduser() if path else find("ptb", data_dir, PTB_HOW)
    words = {}
    for split in SPLITS:
        f = root / f"ptb.{split}.txt"
        if not f.is_file():
            raise DataFormatError(f"{f} is missing. {PTB_HOW}")
        words[split] = _read(f)
    vocab = sorted(set(words["train"]))
    index = {w: i for i, w in enumerate(vocab)}
    for split in ("valid", "test"):
        unknown = sorted(set(words[split]) - index.keys())
        if unknown:
            raise DataFormatError(f"{root / f'ptb.{split}.txt'}: {len(unknown)} words are not in the training "
                                  f"vocabulary (e.g. {unknown[:3]}); PTB maps rare words to <unk> in every split")
    streams = {s: torch.tensor([index[w] for w in words[s]], dtype=torch.long) for s in SPLITS}
    if train_tokens is not None:
        streams["train"] = streams["train"][:train_tokens]
    return Corpus(vocab, index, streams["train"], streams["valid"], streams["test"])


_CACHE: dict = {}


def load_ptb_cached(cfg: dict) -> Corpus:
    """One copy per process of the corpus a data config (``{name: ptb, path, data_dir,
    train_tokens}``) describes."""
    key = repr(sorted(cfg.items()))
    if key not in _CACHE:
        _CACHE[key] = load_ptb(**cfg)
    return _CACHE[key]


def batchify(stream: torch.Tensor, batch_size: int) -> torch.Tensor:
    """(T, batch_size): column b is the b-th contiguous slice of the stream (the tail is dropped)."""
    if batch_size < 1 or len(stream) < batch_size:
        raise ValueError(f"batch_size must be in 1..{len(stream)}, got {batch_size}")
    n = len(stream) // batch_size
    return stream[:n * batch_size].reshape(batch_size, n).t().contiguous()


def check_bptt_sampler(sampler: str) -> None:
    if sampler not in BPTT_SAMPLERS:
        raise ValueError(f"bptt_sampler must be one of {', '.join(BPTT_SAMPLERS)}, not {sampler!r}")


def bptt_windows(data: torch.Tensor, bptt: int, variable: bool = False, generator: torch.Generator | None = None,
                 sampler: BPTTSampler = "awd-lstm"):
    """Yield (inputs, targets) windows of shape (L, B) covering the batchified stream once.

    ``variable``: a random length, ``bptt`` with p = 0.95 else ``bptt / 2`` as the mean, then
    (``sampler``) ``awd-lstm``: normal with std 5, at least 5 (Merity et al. 2018, AWD-LSTM's
    ``main.py``); ``enas-lm``: truncated normal with std 5 (redrawn beyond 2 std, as
    ``tf.random.truncated_normal``), cast to int, at most ``bptt + 20`` (``enas_lm``
    ``data_utils.input_producer``; at least 1 here). The caller scales the learning rate by
    L / bptt if it follows AWD-LSTM."""
    if bptt < 1:
        raise ValueError(f"bptt must be >= 1, got {bptt}")
    check_bptt_sampler(sampler)
    i = 0
    while i < len(data) - 1:
        length = bptt
        if variable:
            base = bptt if torch.rand(1, generator=generator).item() < 0.95 else bptt / 2
            if sampler == "awd-lstm":
                length = max(5, int(torch.normal(float(base), 5.0, (1,), generator=generator).item()))
            else:
                z = torch.randn(1, generator=generator).item()
                while abs(z) > 2.0:
                    z = torch.randn(1, generator=generator).item()
                length = max(1, min(int(base + 5.0 * z), bptt + 20))
        length = min(length, len(data) - 1 - i)
        yield data[i:i + length], data[i + 1:i + 1 + length]
        i += length
