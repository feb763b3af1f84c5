"""Pseudo-colour spectrograms: detect a known colormap (jet) by fitting the pixels to its curve, invert it to
the one scalar each pixel encodes, and map scalars back to colour.

The original data sets are jet-coloured RGB JPEGs. Jet's luma does not rise monotonically with the value it
encodes, so a gray conversion scrambles the image; the inversion recovers the value (up to JPEG noise), the
generator learns that one channel, and generated images are written back through the same colormap."""

from __future__ import annotations

from functools import cache

import numpy as np

from mdaug.imaging import JET_KNOTS, jet, jet_float

COLORMAPS = ("jet",)
FIT_TOLERANCE = 20.0  # mean distance (0–255 RGB units) from a pixel to the colormap's nearest colour; 4:2:0 JPEGs ≈ 11


@cache
def _segments(name: str) -> tuple[np.ndarray, ...]:
    """The colormap as a polyline in RGB space (0–255 units): each segment's start colour (K, 3), direction (K, 3),
    squared length (K,), start value (K,) and value span (K,). A piecewise-linear colormap is exactly this curve,
    so a pixel's nearest colour lies on one of its segments. Stretches of one colour (jet is pure blue from 0.11
    to 0.125) are left out: such a colour reads as the value where the stretch begins."""
    if name not in COLORMAPS:
        raise ValueError(f"unknown colormap {name!r}; known: {', '.join(COLORMAPS)}")
    values = np.unique(np.concatenate([xs for xs, _ in JET_KNOTS]))
    colours = jet_float(values) * 255
    steps = np.diff(colours, axis=0)
    keep = (steps**2).sum(1) > 0
    starts, steps = colours[:-1][keep], steps[keep]
    return tuple(a.astype(np.float32) for a in (starts, steps, (steps**2).sum(1), values[:-1][keep],
                                                  np.diff(values)[keep]))


def invert(rgb: np.ndarray, name: str = "jet", chunk: int = 1 << 16) -> np.ndarray:
    """uint8 RGB (H, W, 3) → the encoded values in [0, 1] (H, W): each pixel's nearest point on the colormap's
    curve, by projecting it onto every segment (`chunk` pixels at a time)."""
    starts, steps, lengths, begin, span = _segments(name)
    pixels = rgb.reshape(-1, 3).astype(np.float32)
    out = np.empty(len(pixels), dtype=np.float32)
    for lo in range(0, len(pixels), chunk):
        p = pixels[lo:lo + chunk]
        along = p @ steps.T - (starts * steps).sum(1)  # (n, K): (pixel − start) · direction
        t = np.clip(along / lengths, 0.0, 1.0)
        dist = (p * p).sum(1, keepdims=True) - 2 * p @ starts.T + (starts * starts).sum(1) \
            - 2 * t * along + t * t * lengths  # squared distance to the projected point
        k = dist.argmin(1)
        out[lo:lo + chunk] = begin[k] + np.take_along_axis(t, k[:, None], 1)[:, 0] * span[k]
    return out.reshape(rgb.shape[:2])


def fit_error(rgb: np.ndarray, name: str = "jet") -> float:
    """Mean distance (0–255 units) from each pixel to the colormap's nearest colour: ~0 for colormap images
    (a few units of JPEG noise), tens for photographs or other colormaps."""
    fitted = apply(invert(rgb, name), name).astype(np.float32)
    return float(np.linalg.norm(rgb.astype(np.float32) - fitted, axis=-1).mean())


def detect(images: list[np.ndarray]) -> tuple[str | None, float]:
    """(colormap that every given RGB image fits, its worst mean fit error), or (None, best error)."""
    best: tuple[str | None, float] = (None, float("inf"))
    for name in COLORMAPS:
        worst = max(fit_error(im, name) for im in images)
        if worst < best[1]:
            best = (name, worst)
    return best if best[1] <= FIT_TOLERANCE else (None, best[1])


def apply(values: np.ndarray, name: str = "jet") -> np.ndarray:
    """Values in [0, 1] (H, W) → uint8 RGB (H, W, 3)."""
    _segments(name)  # an unknown name is refused
    return jet(values)
