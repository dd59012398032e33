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
