"""Radar return of a walker (ellipsoid RCS per segment) and its log-magnitude spectrogram."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from mdaug.sim.config import RadarConfig
from mdaug.sim.kinematics import WalkBatch, segment_radii, world_segments


def ellipsoid_rcs(radius: np.ndarray, half_axis: np.ndarray, los: np.ndarray) -> np.ndarray:
    """RCS of a prolate ellipsoid (equatorial radius a, half length c) seen at angle θ from its axis:
    σ = π a⁴ c² / (a² sin²θ + c² cos²θ)²."""
    c2 = (half_axis**2).sum(-1)
    cos2 = np.where(c2 > 0, (half_axis * los).sum(-1) ** 2 / np.maximum(c2, 1e-12), 0.0)
    a2 = radius**2
    return np.pi * a2 * a2 * c2 / (a2 * (1 - cos2) + c2 * cos2) ** 2


def baseband_return(b: WalkBatch, radar: RadarConfig) -> np.ndarray:
    """Complex slow-time return (B, T): Σ_segments √σ / R² · exp(−j4πR/λ)."""
    t = np.arange(int(round(radar.duration_s * radar.prf_hz))) / radar.prf_hz
    centres, halves = world_segments(b, t, radar.radar_height_m)
    rng = np.sqrt((centres**2).sum(-1))
    los = centres / rng[..., None]
    sigma = ellipsoid_rcs(segment_radii(b)[:, None, :], halves, los)
    phase = (4 * np.pi / radar.wavelength_m) * rng
    return (np.sqrt(sigma) / rng**2 * np.exp(-1j * phase)).sum(-1)


def add_noise(signal: np.ndarray, snr_db: np.ndarray, rngs: list[np.random.Generator]) -> np.ndarray:
    """Add complex white Gaussian noise at each sample's SNR (relative to its mean signal power)."""
    power = (np.abs(signal) ** 2).mean(-1, keepdims=True) / 10 ** (snr_db[:, None] / 10)
    noise = np.stack([g.standard_normal((2, signal.shape[-1])) for g in rngs])
    return signal + np.sqrt(power / 2) * (noise[:, 0] + 1j * noise[:, 1])


def spectrogram_image(signal: np.ndarray, radar: RadarConfig, size: int) -> np.ndarray:
    """STFT (Hann) → dB → clip to dynamic_range_db below each image's peak → [0, 1] → size × size.

    Rows are Doppler frequency from +PRF/2 (top) to −PRF/2 (bottom; approaching is positive);
    columns are time, exactly `size` frames spread over the whole observation."""
    n = signal.shape[-1]
    win_len = int(round(radar.window_s * radar.prf_hz))
    if win_len > n:
        raise ValueError(f"STFT window ({radar.window_s} s) is longer than the observation ({radar.duration_s} s)")
    nfft = max(win_len, size)
    starts = np.round(np.linspace(0, n - win_len, size)).astype(np.int64)
    frames = signal[:, starts[:, None] + np.arange(win_len)[None]] * np.hanning(win_len)
    spec = np.fft.fftshift(np.fft.fft(frames, n=nfft, axis=-1), axes=-1)  # (B, time, freq)
    db = 20 * np.log10(np.abs(spec) + 1e-30)
    peak = db.max(axis=(1, 2), keepdims=True)
    img = (np.clip(db, peak - radar.dynamic_range_db, peak) - peak) / radar.dynamic_range_db + 1.0
    img = img.transpose(0, 2, 1)[:, ::-1]  # (B, freq high→low, time)
    if nfft != size:
        resized = F.interpolate(torch.from_numpy(img.copy())[:, None], size=(size, size), mode="area")
        img = resized[:, 0].numpy()
    return np.clip(img, 0.0, 1.0)


def max_doppler_hz(b: WalkBatch, radar: RadarConfig, rate_hz: float = 400.0) -> float:
    """Largest |Doppler| of any segment centre over the observation (kinematics at rate_hz)."""
    t = np.arange(int(round(radar.duration_s * rate_hz)) + 1) / rate_hz
    centres, _ = world_segments(b, t, radar.radar_height_m)
    radial_speed = np.diff(np.sqrt((centres**2).sum(-1)), axis=1) * rate_hz
    return float(2 * np.abs(radial_speed).max() / radar.wavelength_m)
