"""FLOPs of one forward pass, counted with hooks, for any network built of Conv2d and Linear.

2 × multiply-adds of every convolution and linear layer for one image in evaluation mode
(batch norm, pooling, activations and additions are not counted, as in the NAS papers).
"""
from __future__ import annotations

import torch
from torch import nn


@torch.no_grad()
def count_flops(model: nn.Module, image_shape: tuple[int, int, int], forward=None) -> int:
    """``forward(model, x)`` runs the model (default ``model(x)``; ENAS shared nets need the arch)."""
    total = 0

    def conv(m, inp, out):
        nonlocal total
        k = m.kernel_size[0] * m.kernel_size[1] * (m.in_channels // m.groups)
        total += 2 * k * out.numel()

    def linear(m, inp, out):
        nonlocal total
        total += 2 * m.in_features * out.numel()

    hooks = [m.register_forward_hook(conv if isinstance(m, nn.Conv2d) else linear)
             for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    was_training = model.training
    model.eval()
    try:
        x = torch.zeros(1, *image_shape, device=next(model.parameters()).device)
        forward(model, x) if forward else model(x)
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return total
