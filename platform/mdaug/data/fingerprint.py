"""Near-duplicate detection on decoded pixels and in feature space.

A fingerprint is an image's luma resampled to SIZE² (antialiased), blurred (Gaussian, σ = 2 pixels: resampling
changes the noise floor's texture, not the gait), area-downsampled to 16 × 16, centred and scaled to unit length.
Files are fingerprinted from their luma, not from a colormap's inverted value: JPEG keeps luma at full resolution
and subsamples colour, so inverting jet after a re-encode moves a fingerprint as far as a distinct recording.
Measured on simulated data (64² jet JPGs at 40–45 dB SNR, and 32²/64² gray and jet sets): a copy re-encoded as
JPEG (quality 75–92) and resized by 6–10 % sits at ≤ 0.025 from its original; distinct recordings, of the same
or of other persons, at ≥ 0.044. Distances are Euclidean (0 … 2 for fingerprints)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from mdaug.augment import gaussian_blur
from mdaug.data.images import load_image

SIZE = 32
THUMB = 16
BLUR = 2.0
VERSION = f"luma {SIZE}² blur {BLUR:g} thumb {THUMB}²"  # thresholds recorded under another version do not apply


def fingerprints(images: torch.Tensor, batch: int = 512) -> torch.Tensor:
    """(N, C, H, W) in [-1, 1] → (N, THUMB²) unit vectors (channels averaged; resampled to SIZE² first)."""
    parts = []
    for i in range(0, len(images), batch):
        x = images[i:i + batch].float().mean(1, keepdim=True)
        if x.shape[-2:] != (SIZE, SIZE):
            x = F.interpolate(x, size=(SIZE, SIZE), mode="bilinear", antialias=True, align_corners=False)
        parts.append(gaussian_blur(x, BLUR))
    thumb = F.adaptive_avg_pool2d(torch.cat(parts), THUMB).flatten(1) if parts else torch.zeros(0, THUMB**2)
    thumb = thumb - thumb.mean(1, keepdim=True)
    return F.normalize(thumb, dim=1)


def file_fingerprints(files: list[str | Path]) -> torch.Tensor:
    """Fingerprints of image files (local paths or storage URIs), decoded as luma at SIZE²."""
    if not files:
        return torch.zeros(0, THUMB**2)
    return fingerprints(torch.from_numpy(np.stack([load_image(f, "gray", SIZE) for f in files])))


def nearest(a: torch.Tensor, b: torch.Tensor, chunk: int = 1024) -> tuple[torch.Tensor, torch.Tensor]:
    """For each row of a (N, D): the distance to its nearest row of b (M, D) and that row's index."""
    if len(b) == 0:
        return torch.full((len(a),), float("inf")), torch.zeros(len(a), dtype=torch.long)
    dist, idx = [], []
    for i in range(0, len(a), chunk):
        d = torch.cdist(a[i:i + chunk].float(), b.float())
        m = d.min(1)
        dist.append(m.values)
        idx.append(m.indices)
    return torch.cat(dist), torch.cat(idx)
