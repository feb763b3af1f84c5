"""Exponential moving average of a model's weights, kept as a module (saved in every checkpoint)."""

from __future__ import annotations

import copy

import torch
from torch import nn


def make_ema(model: nn.Module) -> nn.Module:
    return copy.deepcopy(model).eval().requires_grad_(False)


@torch.no_grad()
def update_ema(ema: nn.Module, model: nn.Module, decay: float, step: int | None = None) -> None:
    """ema ← d·ema + (1 − d)·model, with d = min(decay, (1 + step) / (10 + step)) when step is given
    (warm-up: early averages do not stay stuck at the initial weights)."""
    if step is not None:
        decay = min(decay, (1 + step) / (10 + step))
    e = list(ema.parameters())
    m = [p.detach() for p in model.parameters()]
    torch._foreach_lerp_(e, m, 1.0 - decay)
