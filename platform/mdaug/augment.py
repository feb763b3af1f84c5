"""Classic spectrogram augmentations (batch, in [-1, 1], rows = Doppler, columns = time), each applied to an
image with its own probability.

Frequency masks never cover the torso band (the strongest Doppler row of the image and its neighbours):
the torso Doppler encodes the walking speed, the strongest identity cue, and a mask there would turn a
person into nobody. Deliberately absent: horizontal flips (they reverse time) and vertical flips (they
negate Doppler)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from mdaug.bounds import real


@dataclass(frozen=True)
class AugmentConfig:
    """p_*: probability that a transform is applied to an image; the other fields are its strength."""

    p_time_shift: float = 0.5
    time_shift: float = 1.0  # circular shift by up to this fraction of the width (another start instant)
    p_time_mask: float = 0.5
    time_mask_width: float = 0.1  # largest mask, fraction of the width
    p_freq_mask: float = 0.5
    freq_mask_width: float = 0.08  # largest mask, fraction of the height
    torso_guard: float = 0.1  # rows within this fraction of the height of the strongest row are never masked
    p_gain: float = 0.5
    gain_db: float = 3.0  # uniform in ±gain_db, on a 45 dB image scale
    p_noise: float = 0.5
    noise_std: float = 0.03
    p_blur: float = 0.0
    blur_sigma: float = 1.2  # Gaussian blur, σ uniform in [0.3, blur_sigma] pixels

    def __post_init__(self) -> None:
        for key in ("p_time_shift", "p_time_mask", "p_freq_mask", "p_gain", "p_noise", "p_blur"):
            real(self, key, 0.0, 1.0, note=" (a probability)")
        for key in ("time_shift", "time_mask_width", "freq_mask_width", "torso_guard"):
            real(self, key, 0.0, 1.0, note=" (a fraction of the image)")
        real(self, "gain_db", 0.0, 45.0, note=" dB")
        real(self, "noise_std", 0.0, 10.0)
        real(self, "blur_sigma", 0.3, 20.0, note=" pixels")


# Perturbations that keep who is walking, for the classifiers that judge identity: a classifier that fails
# under a 1-pixel blur (one trained without them does, to 14 % of its accuracy) measures texture, not identity.
JUDGE_AUGMENT = AugmentConfig(p_time_shift=0.0, p_time_mask=0.0, p_freq_mask=0.0, p_gain=0.5, p_noise=0.5,
                              noise_std=0.05, p_blur=0.5)


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of (B, C, H, W) with replicated borders."""
    half = int(3 * sigma)
    r = torch.arange(-half, half + 1, dtype=x.dtype)
    g = torch.exp(-r**2 / (2 * sigma**2))
    g = g / g.sum()
    c = x.shape[1]
    x = F.conv2d(F.pad(x, (half, half, 0, 0), mode="replicate"), g.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
    return F.conv2d(F.pad(x, (0, 0, half, half), mode="replicate"), g.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)


def _chosen(p: float, b: int, rand) -> torch.Tensor:
    return rand(b) < p


def _time_shift(x: torch.Tensor, frac: torch.Tensor) -> torch.Tensor:
    b, c, h, w = x.shape
    idx = (torch.arange(w, device=x.device)[None] - (frac * w).long()[:, None]) % w
    return torch.gather(x, 3, idx[:, None, None, :].expand(b, c, h, w))


def _freq_mask_start(span: torch.Tensor, guard_lo: torch.Tensor, guard_hi: torch.Tensor, h: int,
                     u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A start row, uniform over the positions where [start, start + span) misses [guard_lo, guard_hi],
    and whether there is any such position."""
    below = (guard_lo - span + 1).clamp_min(0)  # starts 0 … guard_lo − span
    above = (h - span - guard_hi).clamp_min(0)  # starts guard_hi + 1 … h − span
    pick = (u * (below + above)).long()
    return torch.where(pick < below, pick, guard_hi + 1 + (pick - below)), below + above > 0


def augment(x: torch.Tensor, cfg: AugmentConfig, generator: torch.Generator | None = None) -> torch.Tensor:
    """Return an augmented copy of x (B, C, H, W)."""
    b, _, h, w = x.shape
    dev = x.device

    def rand(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=generator).to(dev)

    out = x.clone()
    if cfg.p_time_shift > 0 and cfg.time_shift > 0:
        on = _chosen(cfg.p_time_shift, b, rand)
        out = _time_shift(out, torch.where(on, rand(b) * cfg.time_shift, torch.zeros(b, device=dev)))
    floor = out.amin(dim=(1, 2, 3), keepdim=True)
    if cfg.p_time_mask > 0 and cfg.time_mask_width > 0:
        on = _chosen(cfg.p_time_mask, b, rand)
        span = (rand(b) * cfg.time_mask_width * w).long() * on
        start = (rand(b) * (w - span + 1)).long().clamp_max(w - 1)
        pos = torch.arange(w, device=dev)[None]
        mask = (pos >= start[:, None]) & (pos < (start + span)[:, None])
        out = torch.where(mask.view(b, 1, 1, w), floor, out)
    if cfg.p_freq_mask > 0 and cfg.freq_mask_width > 0:
        on = _chosen(cfg.p_freq_mask, b, rand)
        torso = x.mean(dim=(1, 3)).argmax(1)  # (B,) strongest Doppler row
        guard = max(1, round(cfg.torso_guard * h))
        lo, hi = (torso - guard).clamp_min(0), (torso + guard).clamp_max(h - 1)
        span = ((rand(b) * cfg.freq_mask_width * h).long() * on).clamp_min(1)
        start, room = _freq_mask_start(span, lo, hi, h, rand(b))
        pos = torch.arange(h, device=dev)[None]
        mask = (pos >= start[:, None]) & (pos < (start + span)[:, None]) & (on & room)[:, None]
        out = torch.where(mask.view(b, 1, h, 1), floor, out)
    if cfg.p_gain > 0 and cfg.gain_db > 0:  # log-magnitude images: a gain is an additive shift of the dB scale
        on = _chosen(cfg.p_gain, b, rand).float().view(b, 1, 1, 1)
        out = out + on * (rand(b, 1, 1, 1) * 2 - 1) * (cfg.gain_db / 45.0) * 2
    if cfg.p_blur > 0:
        on = _chosen(cfg.p_blur, b, rand)
        if bool(on.any()):
            sigma = 0.3 + float(rand(1)) * max(0.0, cfg.blur_sigma - 0.3)
            out = torch.where(on.view(b, 1, 1, 1), gaussian_blur(out, sigma), out)
    if cfg.p_noise > 0 and cfg.noise_std > 0:
        on = _chosen(cfg.p_noise, b, rand).float().view(b, 1, 1, 1)
        out = out + on * cfg.noise_std * torch.randn(out.shape, generator=generator).to(dev)
    return out.clamp(-1.0, 1.0)
