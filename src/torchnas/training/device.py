"""The device a network trains on: CUDA when present, else the CPU (``device: auto``)."""
from __future__ import annotations

import torch


def default_device(device: str | None = "auto") -> torch.device:
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)
