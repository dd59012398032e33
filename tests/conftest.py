import functools
import importlib
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

SHARED = Path(os.environ.get("TORCHNAS_DATA") or Path(__file__).resolve().parents[1].parent / "shared" / "data")
NB201_CSV = SHARED / "nasbench201" / "nb201_12epoch.csv"
CIFAR_TOOL = Path(__file__).resolve().parents[1].parent / "shared" / "tools" / "cifar10_batches.py"


def require(path: Path, what: str) -> Path:
    """``path`` of the shared data (or tools). Absent, the test is skipped, except under CI
    (``CI=true``), where it fails: CI has ../shared, so a missing copy is a broken set-up."""
    if not Path(path).exists():
        msg = f"{what} not found at {path}"
        if os.environ.get("CI"):
            pytest.fail(f"{msg}; CI=true needs the shared data (../shared, or $TORCHNAS_DATA)")
        pytest.skip(msg)
    return Path(path)


def require_module(name: str):
    """An optional package of the dev extra: skipped when absent, a failure under CI."""
    if importlib.util.find_spec(name) is None:
        if os.environ.get("CI"):
            pytest.fail(f"package {name!r} is missing; CI installs the dev extra, which has it")
        pytest.skip(f"package {name!r} not installed")
    return importlib.import_module(name)


def needs(path: Path, what: str):
    """Decorator form of :func:`require` for a whole test."""
    def deco(fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            require(path, what)
            return fn(*args, **kwargs)
        return wrapper
    return deco


def needs_module(name: str):
    """Decorator form of :func:`require_module`."""
    def deco(fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            require_module(name)
            return fn(*args, **kwargs)
        return wrapper
    return deco


needs_table = needs(NB201_CSV, "NAS-Bench-201 table")


@pytest.fixture(scope="session")
def shared_cifar(tmp_path_factory):
    """The shared CIFAR-10 copy unpacked once per session into cifar-10-batches-py/."""
    require(CIFAR_TOOL, "shared CIFAR-10 tool")
    out = tmp_path_factory.mktemp("cifar10")
    subprocess.run([sys.executable, str(CIFAR_TOOL), str(out)], check=True, capture_output=True, timeout=300)
    return out


@pytest.fixture(scope="session")
def nb201_table():
    require(NB201_CSV, "NAS-Bench-201 table")
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
