"""No host-device synchronisation inside an ENAS step (issue 31, item 1).

Every way a tensor's value reaches Python (``item``, ``tolist``, ``cpu``, ``numpy``, ``bool``,
``float``, ``int``, ``index``) is counted while the ENAS loops of the micro, macro,
NAS-Bench-201 and recurrent spaces run, each read attributed to the first torchnas module on
the stack. The controller (``controller.py``, ``strategies/``) and the data pipeline (``data/``)
live on the host by construction, so their reads cost the device nothing; every other read is a
wait for the device on a GPU. The checks:

* the shared-weight phase reads the same number of times for 2 and for 6 steps (nothing per step;
  the losses come back once per ``READ_EVERY`` steps and at the epoch's end);
* each controller update reads exactly once (its samples' rewards, one transfer);
* derive reads once, however many candidates it scores.

Where CUDA is present, the same loops run under ``torch.cuda.set_sync_debug_mode("error")``,
which raises on any synchronising call inside a step.
"""
import random
import sys
from pathlib import Path

import pytest
import torch

from torchnas.enas import ENASSearch
from torchnas.spaces import get_space
from torchnas.strategies.reinforce import Reinforce

pytestmark = pytest.mark.usefixtures("one_thread")

READS = ("item", "tolist", "cpu", "numpy", "__bool__", "__float__", "__int__", "__index__")
HOST = ("controller.py", "strategies", "data")          # modules whose tensors live on the host
PACKAGE = Path(__import__("torchnas").__file__).parent


class Reads:
    """Counts the reads of tensor values made on behalf of torchnas modules outside HOST."""

    def __init__(self, monkeypatch):
        self.sites = []
        for name in READS:
            real = getattr(torch.Tensor, name)
            monkeypatch.setattr(torch.Tensor, name, self._wrap(real))

    def _wrap(self, real):
        def read(tensor, *args, **kwargs):
            self._note()
            return real(tensor, *args, **kwargs)
        return read

    def _note(self):
        frame = sys._getframe(2)
        while frame is not None:
            path = Path(frame.f_code.co_filename)
            if PACKAGE in path.parents:
                rel = path.relative_to(PACKAGE)
                if rel.parts[0] not in HOST:
                    self.sites.append(f"{rel}:{frame.f_lineno}")
                return
            frame = frame.f_back

    def during(self, fn) -> list[str]:
        start = len(self.sites)
        fn()
        return self.sites[start:]


def _lm_corpus(path):
    rng = random.Random(0)
    words = [f"w{k}" for k in range(16)]
    path.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", 300), ("valid", 60), ("test", 60)):
        lines = [" ".join(words[(s + k) % 16] for k in range(rng.randrange(4, 9)))
                 for s in (rng.randrange(16) for _ in range(n))]
        (path / f"ptb.{split}.txt").write_text("\n".join(lines) + "\n")
    return path


IMAGES = dict(data={"name": "digits", "per_class": 20}, batch_size=8, grad_clip=5.0)
LOOPS = {
    "enas-micro": ({"num_nodes": 2}, dict(IMAGES, net={"channels": 4, "num_layers": 1})),
    "enas-macro": ({"num_layers": 2}, dict(IMAGES, net={"channels": 4})),
    "nb201": ({}, dict(IMAGES, net={"channels": 4, "num_cells": 1})),
    "enas-rnn": ({"num_nodes": 3}, dict(net={"hidden_size": 8}, batch_size=4, bptt=5, reward_batch=4)),
}


def _search(name, tmp_path, **kw):
    space_kw, shared = LOOPS[name]
    if name == "enas-rnn":
        shared = dict(shared, data={"name": "ptb", "path": str(_lm_corpus(tmp_path / "ptb"))})
    space = get_space(name, **space_kw)
    strategy = Reinforce(space, seed=0, batch_size=3)
    return ENASSearch(space, strategy, seed=0, epochs=3, device="cpu", **{**shared, **kw})


@pytest.mark.parametrize("name", sorted(LOOPS))
def test_enas_steps_read_nothing_back_from_the_device(name, tmp_path, monkeypatch):
    reads = Reads(monkeypatch)
    shared = {}
    for steps in (2, 6):
        s = _search(name, tmp_path, max_train_batches=steps, train_steps=1, derive_samples=2)
        s.train_shared_epoch()                                   # the first epoch builds buffers
        shared[steps] = reads.during(s.train_shared_epoch)
    assert len(shared[2]) == len(shared[6]) <= 2, shared          # per epoch, not per step
    controller = {}
    for updates in (1, 3):
        s = _search(name, tmp_path, max_train_batches=2, train_steps=updates)
        controller[updates] = reads.during(s.train_controller)
    assert len(controller[1]) == 1 and len(controller[3]) == 3, controller   # one per update: the rewards
    for samples in (2, 12):
        s = _search(name, tmp_path, max_train_batches=2, derive_samples=samples, keep=1)
        assert len(reads.during(s.derive)) == 1
    assert s.strategy.controller.g_emb.device.type == "cpu"     # the controller lives on the host


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("name", sorted(LOOPS))
def test_enas_steps_never_synchronise_cuda(name, tmp_path):
    """On a GPU: the synchronising calls of a shared-weight epoch, counted by the sync debug mode,
    are the same for 2 and for 4 steps (the epoch's end only)."""
    import warnings
    counts = {}
    for steps in (2, 4):
        s = _search(name, tmp_path, max_train_batches=steps, device="cuda")
        s.train_shared_epoch()
        torch.cuda.synchronize()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
            try:
                s.train_shared_epoch()
            finally:
                torch.cuda.set_sync_debug_mode("default")
        counts[steps] = [str(w.message) for w in caught if "synchroniz" in str(w.message)]
    assert len(counts[2]) == len(counts[4]), counts


def test_step_losses_sum_as_item_would_and_name_the_first_non_finite_step(monkeypatch):
    """``StepLosses``: the weighted total equals the float64 sum of per-step ``.item()`` values in
    step order; the values come back in one read per ``every`` steps; the first non-finite
    ``check`` is named with its epoch and step, whatever comes after it."""
    from torchnas.training.device import StepLosses
    g = torch.Generator().manual_seed(0)
    values = (torch.rand(10, generator=g) * 3).float()
    weights = [16, 16, 16, 16, 16, 16, 16, 16, 16, 7]
    reads = Reads(monkeypatch)
    losses = StepLosses(every=4)
    sites = reads.during(lambda: [losses.add(v, w, (1, i + 1)) for i, (v, w) in enumerate(zip(values, weights))])
    assert len(sites) == 2                                    # after steps 4 and 8
    assert losses.read() is None
    expected = 0.0
    for v, w in zip(values.tolist(), weights):
        expected += v * w
    assert losses.total == expected
    losses = StepLosses(every=5)
    out = [losses.add(torch.tensor(1.0), 1, (2, s), check=torch.tensor(c))
           for s, c in zip(range(40, 45), [1.0, 2.0, float("inf"), float("nan"), 3.0])]
    assert out == [None] * 4 + ["non-finite loss (inf) at epoch 2, step 42"]
    assert losses.total == 2.0                                # the steps before it
    losses = StepLosses(every=3)                              # with and without a check, mixed
    out = [losses.add(torch.tensor(2.0), 1, (3, 1)), losses.add(torch.tensor(5.0), 1, (3, 2), check=torch.tensor(1.0)),
           losses.add(torch.tensor(float("nan")), 1, (3, 3))]
    assert out == [None, None, "non-finite loss (nan) at epoch 3, step 3"] and losses.total == 7.0
