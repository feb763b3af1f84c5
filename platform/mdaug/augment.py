"""Classic spectrogram augmentations (batch, in [-1, 1], rows = Doppler, columns = time).

Deliberately absent: horizontal flips (they reverse time) and vertical flips (they negate Doppler)."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class AugmentConfig:
    """Probabilities and strengths. time_shift: circular shift by up to this fraction of the width."""

    time_shift: float = 1.0
    time_masks: int = 1
    time_mask_width: float = 0.1
    freq_masks: int = 1
    freq_mask_width: float = 0.08
    gain_db: float = 3.0
    noise_std: float = 0.03


def augment(x: torch.Tensor, cfg: AugmentConfig, generator: torch.Generator | None = None) -> torch.Tensor:
    """Return an augmented copy of x (B, C, H, W)."""
    b, _, h, w = x.shape
    dev = x.device
    out = x.clone()

    def rand(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=generator).to(dev)

    if cfg.time_shift > 0:  # a walk observed from another start instant
        shifts = (rand(b) * cfg.time_shift * w).long()
        idx = (torch.arange(w, device=dev)[None] - shifts[:, None]) % w
        out = torch.gather(out, 3, idx[:, None, None, :].expand(b, out.shape[1], h, w))
    floor = out.amin(dim=(1, 2, 3), keepdim=True)
    for count, width, axis, size in ((cfg.time_masks, cfg.time_mask_width, 3, w),
                                     (cfg.freq_masks, cfg.freq_mask_width, 2, h)):
        for _ in range(count):
            span = (rand(b) * width * size).long()
            start = (rand(b) * (size - span)).long()
            pos = torch.arange(size, device=dev)[None]
            mask = (pos >= start[:, None]) & (pos < (start + span)[:, None])
            shape = (b, 1, 1, size) if axis == 3 else (b, 1, size, 1)
            out = torch.where(mask.view(shape), floor, out)
    if cfg.gain_db > 0:  # log-magnitude images: a gain is an additive shift of the dB scale
        out = out + (rand(b, 1, 1, 1) * 2 - 1) * (cfg.gain_db / 45.0) * 2
    if cfg.noise_std > 0:
        out = out + cfg.noise_std * torch.randn(out.shape, generator=generator).to(dev)
    return out.clamp(-1.0, 1.0)
