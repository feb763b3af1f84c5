"""A plain 2-D CNN person classifier (ClassifierConfig.arch "cnn2d"): the independent judge of generated sets
and the second architecture of the evaluation.

It treats a spectrogram as an image: `layers` blocks of two 3×3 convolutions (BatchNorm, ReLU), each block
halving both axes with a stride-2 first convolution and doubling the channels up to `width`, then global average
pooling and a linear head. It shares no design with the temporal classifier (models/classifier.py), which the
sampling sweep and the VA-VAE's identity loss use, so the generator was never tuned against it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

if TYPE_CHECKING:
    from mdaug.models.classifier import ClassifierConfig

LAYERS = 4  # blocks of the default cnn2d: 64² → 4² before pooling
KERNEL = 3


def block_widths(width: int, layers: int) -> list[int]:
    """Channels of each block: doubling up to `width` in the last (at least 8)."""
    return [max(width >> (layers - 1 - i), 8) for i in range(layers)]


class Conv2dClassifier(nn.Module):
    def __init__(self, cfg: ClassifierConfig) -> None:
        super().__init__()
        self.config = cfg
        blocks, cin, pad = [], cfg.in_channels, cfg.kernel // 2
        for cout in block_widths(cfg.width, cfg.layers):
            blocks.append(nn.Sequential(  # (B, cin, H, W) → (B, cout, H/2, W/2)
                nn.Conv2d(cin, cout, cfg.kernel, stride=2, padding=pad, bias=False), nn.BatchNorm2d(cout), nn.ReLU(),
                nn.Conv2d(cout, cout, cfg.kernel, padding=pad, bias=False), nn.BatchNorm2d(cout), nn.ReLU()))
            cin = cout
        self.blocks = nn.ModuleList(blocks)
        self.head = nn.Linear(cin, cfg.num_classes)
        self.feature_dim = cin

    def feature_maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Each block's output (B, C_l, H / 2^l, W / 2^l) for images x (B, C, H, W) in [-1, 1]."""
        maps, h = [], x
        for block in self.blocks:
            h = block(h)
            maps.append(h)
        return maps

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate-layer features (B, width): the last block, averaged over both axes."""
        return self.feature_maps(x)[-1].mean((-2, -1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))
