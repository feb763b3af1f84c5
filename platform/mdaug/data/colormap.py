"""Pseudo-colour spectrograms: detect a known colormap (jet) by fitting the pixels to its table, invert it to
the one scalar each pixel encodes, and map scalars back to colour.

The original data sets are jet-coloured RGB JPEGs. Jet's luma does not rise monotonically with the value it
encodes, so a gray conversion scrambles the image; the inversion recovers the value (up to JPEG noise), the
generator learns that one channel, and generated images are written back through the same colormap."""

from __future__ import annotations

from functools import cache

import numpy as np
from scipy.spatial import cKDTree

from mdaug.imaging import jet

COLORMAPS = ("jet",)
FIT_TOLERANCE = 20.0  # mean distance (0–255 RGB units) from a pixel to the colormap's nearest colour; 4:2:0 JPEGs ≈ 11


@cache
def _table(name: str) -> tuple[np.ndarray, cKDTree]:
    """The colormap sampled at 1024 values, and a nearest-colour index over its entries."""
    values = np.linspace(0.0, 1.0, 1024, dtype=np.float32)
    colours = apply(values[None], name)[0].astype(np.float32)  # (1024, 3)
    return values, cKDTree(colours)


def invert(rgb: np.ndarray, name: str = "jet") -> np.ndarray:
    """uint8 RGB (H, W, 3) → the encoded values in [0, 1] (H, W): each pixel's nearest colormap colour."""
    values, tree = _table(name)
    _, idx = tree.query(rgb.reshape(-1, 3).astype(np.float32))
    return values[idx].reshape(rgb.shape[:2])


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
    if name not in COLORMAPS:
        raise ValueError(f"unknown colormap {name!r}; known: {', '.join(COLORMAPS)}")
    return jet(values)
