"""The device a network trains on: CUDA when present, else the CPU (``device: auto``)."""
from __future__ import annotations

import torch


def default_device(device: str | None = "auto") -> torch.device:
    """``auto`` (or None): CUDA when present, else the CPU; ``cpu``, ``cuda``, ``cuda:N``,
    ``mps``: that device, which must exist here (else one clear error)."""
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"device {device!r}: choose auto, cpu, cuda, cuda:N or mps") from None
    if dev.type == "cuda":
        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if n == 0:
            raise ValueError(f"device {device!r}: this machine has no CUDA device; use --device cpu (or auto)")
        if dev.index is not None and dev.index >= n:
            raise ValueError(f"device {device!r}: this machine has {n} CUDA device(s), cuda:0..cuda:{n - 1}")
    elif dev.type == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise ValueError(f"device {device!r}: MPS is not available here; use --device cpu (or auto)")
    elif dev.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"device {device!r}: choose auto, cpu, cuda, cuda:N or mps")
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
