import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

SHARED = Path(os.environ.get("TORCHNAS_DATA") or Path(__file__).resolve().parents[1].parent / "shared" / "data")
NB201_CSV = SHARED / "nasbench201" / "nb201_12epoch.csv"
CIFAR_TOOL = Path(__file__).resolve().parents[1].parent / "shared" / "tools" / "cifar10_batches.py"


@pytest.fixture(scope="session")
def shared_cifar(tmp_path_factory):
    """The shared CIFAR-10 copy unpacked once per session into cifar-10-batches-py/."""
    if not CIFAR_TOOL.exists():
        pytest.skip(f"shared CIFAR-10 tool not found at {CIFAR_TOOL}")
    out = tmp_path_factory.mktemp("cifar10")
    subprocess.run([sys.executable, str(CIFAR_TOOL), str(out)], check=True, capture_output=True, timeout=300)
    return out


@pytest.fixture(scope="session")
def nb201_table():
    if not NB201_CSV.exists():
        pytest.skip(f"NAS-Bench-201 table not found at {NB201_CSV}")
    from torchnas.evaluators import NB201Table
    return NB201Table(path=NB201_CSV)


@pytest.fixture(scope="module")
def one_thread():
    """Tiny networks: one intra-op thread is as fast and does not stall on a busy machine."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def kill_on_call(monkeypatch, cls, name: str, n: int):
    """Make ``cls.name`` raise KeyboardInterrupt on its n-th call (a run killed there);
    returns a function that puts the real method back."""
    real, calls = getattr(cls, name), {"n": 0}

    def crash(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == n:
            raise KeyboardInterrupt
        return real(self, *args, **kwargs)
    monkeypatch.setattr(cls, name, crash)
    return lambda: monkeypatch.setattr(cls, name, real)
