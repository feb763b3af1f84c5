"""Linear path x_t = t·x1 + (1−t)·x0 (t = 0 noise, t = 1 data), velocity target x1 − x0,
logit-normal t = sigmoid(N(0, 1)), MSE plus optional cosine loss."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def flow_loss(model: nn.Module, x1: torch.Tensor, y: torch.Tensor, cosine_weight: float = 1.0,
              generator: torch.Generator | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Mean over the batch of MSE(v, x1 − x0) + cosine_weight · (1 − cos(v, x1 − x0))."""
    b = x1.shape[0]
    t = torch.sigmoid(torch.randn(b, device=x1.device, generator=generator))
    x0 = torch.randn(x1.shape, device=x1.device, dtype=x1.dtype, generator=generator)
    tb = t.view(b, *([1] * (x1.dim() - 1))).to(x1.dtype)
    target = x1 - x0
    v = model(tb * x1 + (1 - tb) * x0, t, y)
    mse = (v.float() - target.float()).pow(2).flatten(1).mean(1)
    cos = 1 - F.cosine_similarity(v.float().flatten(1), target.float().flatten(1), dim=1)
    loss = (mse + cosine_weight * cos).mean()
    return loss, {"mse": mse.mean().detach(), "cos": cos.mean().detach()}
