"""The device a network trains on: CUDA when present, else the CPU (``device: auto``)."""
from __future__ import annotations

import contextlib
import math
from typing import Literal

import torch


def default_device(device: str | None = "auto", setting: str = "--device") -> torch.device:
    """``auto`` (or None): CUDA when present, else the CPU; ``cpu``, ``cuda``, ``cuda:N``,
    ``mps``: that device, which must exist here (else one error naming ``setting``, the option
    or setting the user wrote it in)."""
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    name = f"{setting} {device!r}"
    fix = f"use {setting} cpu (or auto)" if setting.startswith("--") else f"set {setting} to cpu (or auto)"
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"{name}: choose auto, cpu, cuda, cuda:N or mps") from None
    if dev.type == "cuda":
        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if n == 0:
            raise ValueError(f"{name}: this machine has no CUDA device; {fix}")
        if dev.index is not None and dev.index >= n:
            raise ValueError(f"{name}: this machine has {n} CUDA device(s), cuda:0..cuda:{n - 1}")
    elif dev.type == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise ValueError(f"{name}: MPS is not available here; {fix}")
    elif dev.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"{name}: choose auto, cpu, cuda, cuda:N or mps")
    return dev



HEAP_BLOCKS_UP_TO = 8 << 20     # 8 MiB: a recurrent search's [H, 2H] gradients (8 MB at H = 1,000) stay in the heap


def fix_heap_threshold(nbytes: int = HEAP_BLOCKS_UP_TO) -> bool:
    """Fix glibc's mmap threshold (``mallopt(M_MMAP_THRESHOLD)``, what ``MALLOC_MMAP_THRESHOLD_``
    sets): blocks above ``nbytes`` are mapped and given back when freed, smaller ones come from
    the heap. By default the threshold follows the largest block freed, up to 32 MiB, so a
    recurrent search's per-window buffers (18 MB each at the peer's size) end up in a heap that
    keeps their pages after they are freed. Process-wide: the recurrent ENAS search sets it
    (docs/results.md, "The whole search at the peer's size"). glibc only (elsewhere nothing is
    done and False is returned); a ``MALLOC_MMAP_THRESHOLD_`` in the environment wins."""
    import ctypes
    import os
    if "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return False
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version                         # glibc's, not musl's or macOS's
        return bool(libc.mallopt(-3, int(nbytes)))        # M_MMAP_THRESHOLD
    except (OSError, AttributeError):
        return False


def wide_dtype(device: torch.device) -> torch.dtype:
    """The dtype of a sum kept on the device and read once: float64, except on MPS (it has none)."""
    return torch.float32 if device.type == "mps" else torch.float64


READ_EVERY = 32      # training steps between read-backs of the losses (the loops' "log interval")


class StepLosses:
    """A training epoch's per-step losses, kept on the device and read back in one transfer every
    ``every`` steps and at the epoch's end, so that no step waits for the device (issue 31).
    Read back, they are summed on the host in float64 in step order, exactly as a per-step
    ``.item()`` would sum them, and the first non-finite loss is named with its step.

    ``add(value, weight, (epoch, step), check=None)``: the step's loss ``value`` (weighted by
    ``weight`` in the total) and, when it differs, the loss ``check`` whose finiteness decides
    divergence; returns the divergence's reason when a read finds a non-finite loss, else None
    (also :meth:`read`)."""

    def __init__(self, every: int | None = None):
        self.every, self.total, self._pending = every or READ_EVERY, 0.0, []

    def add(self, value: torch.Tensor, weight: float, step, check: torch.Tensor | None = None):
        self._pending.append((value.detach(), None if check is None else check.detach(), weight, step))
        return self.read() if len(self._pending) >= self.every else None

    def read(self):
        if not self._pending:
            return None
        pending, self._pending = self._pending, []
        tensors = [t for v, c, _, _ in pending for t in ((v,) if c is None else (v, c))]
        values = iter(torch.stack(tensors).tolist())                  # the one read-back
        for v, c, weight, (epoch, step) in pending:
            value = next(values)
            check = value if c is None else next(values)
            if not math.isfinite(check):
                return f"non-finite loss ({check}) at epoch {epoch}, step {step}"
            self.total += value * weight
        return None


Precision = Literal["auto", "bf16", "fp32"]


def precision_of(precision: str, device: torch.device) -> str:
    """``auto``: bf16 on a CUDA device that has it, fp32 elsewhere (a CPU's bf16 is slower)."""
    if precision not in ("auto", "bf16", "fp32"):
        raise ValueError(f"precision must be auto, bf16 or fp32, not {precision!r}")
    if precision == "auto":
        return "bf16" if device.type == "cuda" and torch.cuda.is_bf16_supported() else "fp32"
    return precision


def autocast(device: torch.device, precision: str):
    """The forward pass's context: bf16 autocast (weights, optimizer and loss stay fp32), or none."""
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()
