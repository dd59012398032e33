import pytest
import torch

from tests.conftest import SHARED, needs
from torchnas.data import DataFormatError, DataNotFoundError
from torchnas.data.ptb import batchify, bptt_windows, load_ptb

PTB = SHARED / "ptb"
needs_ptb = needs(PTB / "ptb.train.txt", "shared PTB copy")


@needs_ptb
def test_token_counts_and_vocabulary():
    c = load_ptb(path=PTB)
    assert (len(c.train), len(c.valid), len(c.test)) == (929_589, 73_760, 82_430)
    assert len(c) == 10_000 and "<eos>" in c.index and "<unk>" in c.index
    assert c.vocab == sorted(c.vocab)
    assert c.train.dtype == torch.long and c.vocab[c.train[-1]] == "<eos>"


def _write(tmp_path, train="a b c\nb c\n", valid="a b\n", test="c\n"):
    for name, text in (("train", train), ("valid", valid), ("test", test)):
        (tmp_path / f"ptb.{name}.txt").write_text(text)
    return tmp_path


def test_small_corpus_and_batches(tmp_path):
    c = load_ptb(path=_write(tmp_path))
    assert c.vocab == ["<eos>", "a", "b", "c"]
    assert c.train.tolist() == [1, 2, 3, 0, 2, 3, 0]
    data = batchify(torch.arange(10), 3)
    assert data.shape == (3, 3) and data[:, 0].tolist() == [0, 1, 2] and data[:, 1].tolist() == [3, 4, 5]
    windows = list(bptt_windows(batchify(torch.arange(100), 2), 7))
    assert sum(len(x) for x, _ in windows) == 49
    for x, y in windows:
        assert torch.equal(x[1:], y[:-1])
    g = torch.Generator().manual_seed(0)
    lengths = [len(x) for x, _ in bptt_windows(batchify(torch.arange(20000), 2), 35, variable=True, generator=g)]
    assert min(lengths[:-1]) >= 5 and 30 < sum(lengths) / len(lengths) < 36 and len(set(lengths)) > 5


def test_enas_lm_bptt_lengths_are_a_truncated_normal():
    """``bptt_sampler: enas-lm`` (enas_lm data_utils.input_producer): mean 35 (p 0.95) or 17.5,
    std 5, redrawn beyond 2 std, cast to int: every length within base ± 10; AWD-LSTM's
    untruncated normal goes beyond."""
    data = batchify(torch.arange(400_000), 2)

    def lengths(sampler):
        g = torch.Generator().manual_seed(1)
        return [len(x) for x, _ in bptt_windows(data, 35, variable=True, generator=g, sampler=sampler)][:-1]
    enas, awd = lengths("enas-lm"), lengths("awd-lstm")
    assert all(25 <= n <= 45 or 7 <= n <= 27 for n in enas) and max(enas) <= 45
    long = [n for n in enas if n >= 25]
    assert 0.9 < len(long) / len(enas) < 1.0 and 33.5 < sum(long) / len(long) < 35.5   # int() truncates: ~34.5
    assert max(awd) > 45 and min(awd) >= 5
    with pytest.raises(ValueError, match="bptt_sampler"):
        next(bptt_windows(data, 35, variable=True, sampler="gauss"))


def test_clear_errors(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCHNAS_DATA", str(tmp_path / "nowhere"))
    with pytest.raises(DataNotFoundError, match=r"nowhere/ptb.*ptb.train.txt"):
        load_ptb()
    d = _write(tmp_path)
    (d / "ptb.test.txt").unlink()
    with pytest.raises(DataFormatError, match=r"ptb.test.txt is missing"):
        load_ptb(path=d)
    _write(tmp_path, valid="a zebra\n")
    with pytest.raises(DataFormatError, match=r"ptb.valid.txt: 1 words are not in the training vocabulary"):
        load_ptb(path=tmp_path)
    _write(tmp_path, train="")
    with pytest.raises(DataFormatError, match="is empty"):
        load_ptb(path=tmp_path)
    (tmp_path / "ptb.train.txt").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(DataFormatError, match="not UTF-8"):
        load_ptb(path=tmp_path)
    with pytest.raises(ValueError, match="batch_size"):
        batchify(torch.arange(3), 5)
