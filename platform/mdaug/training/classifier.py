"""Training the person classifier: a plain loop (one device, tensors in memory), with optional classic
spectrogram augmentation.

Training length is a number of optimizer steps, not epochs: arms of an evaluation that differ only in how
much data they add get the same compute, so a gain cannot come from training longer."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from mdaug.augment import AugmentConfig, augment
from mdaug.models.classifier import ClassifierConfig, build_classifier


def train_classifier(images: torch.Tensor, labels: torch.Tensor | np.ndarray, num_classes: int, steps: int = 300,
                     batch_size: int = 32, augment_cfg: AugmentConfig | None = None, seed: int = 0,
                     lr: float = 4e-3, width: int = 128, device: str | None = None,
                     arch: str = "temporal") -> torch.nn.Module:
    """Exactly `steps` AdamW steps (one-cycle learning rate) on batches drawn with replacement; returns the
    net (`arch`: temporal | cnn2d, mdaug.models.classifier) in eval mode on the CPU."""
    if steps < 1:
        raise ValueError(f"classifier steps must be ≥ 1, got {steps}")
    if len(images) == 0:
        raise ValueError("no training images for the classifier")
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    labels = torch.as_tensor(labels)
    torch.manual_seed(seed)
    net = build_classifier(ClassifierConfig.for_arch(arch, images.shape[1], images.shape[2], num_classes,
                                                     width)).to(device)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=steps, pct_start=0.15)
    draw = torch.Generator().manual_seed(seed)
    net.train()
    for _ in range(steps):
        idx = torch.randint(0, len(images), (batch_size,), generator=draw)
        x = images[idx]
        if augment_cfg is not None:
            x = augment(x, augment_cfg, draw)
        loss = F.cross_entropy(net(x.to(device)), labels[idx].to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    return net.cpu().eval()


@torch.no_grad()
def predict(net: torch.nn.Module, images: torch.Tensor, batch: int = 256) -> np.ndarray:
    """Predicted labels for images (N, C, H, W)."""
    device = next(net.parameters()).device
    return torch.cat([net(images[i:i + batch].to(device)).argmax(1).cpu()
                      for i in range(0, len(images), batch)]).numpy()


def accuracy(net: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor | np.ndarray) -> float:
    return float((predict(net, images) == np.asarray(labels)).mean())
