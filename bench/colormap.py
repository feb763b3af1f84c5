"""Inverting jet-coloured spectrograms (every jet image's decode): `mdaug.data.colormap.invert`, which projects
each pixel onto the colormap's piecewise-linear curve, against the nearest of 1024 sampled colours found with a
k-d tree (what the platform did until 2026-12-08), both in this run on simulated jet JPEGs, with how far each
lands from the value the simulator encoded."""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image
from scipy.spatial import cKDTree

from mdaug.data.colormap import invert
from mdaug.imaging import jet
from mdaug.sim import SimConfig, simulate_dataset


def nearest_sample(rgb: np.ndarray) -> np.ndarray:
    """The baseline: the nearest of 1024 rounded jet colours (a k-d tree query per pixel)."""
    values = np.linspace(0.0, 1.0, 1024, dtype=np.float32)
    tree = cKDTree(jet(values[None])[0].astype(np.float32))
    return values[tree.query(rgb.reshape(-1, 3).astype(np.float32))[1]].reshape(rgb.shape[:2])


def ms_per_image(fn, images: list[np.ndarray], repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        for im in images:
            fn(im)
        best = min(best, time.perf_counter() - t0)
    return 1000 * best / len(images)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--sizes", type=int, nargs="+", default=[64, 128, 256], help="image sides in pixels")
    p.add_argument("--images", type=int, default=8, help="simulated jet JPGs per size (2 persons)")
    p.add_argument("--repeats", type=int, default=3, help="best of this many passes per way")
    args = p.parse_args()
    print(f"{os.cpu_count()} CPUs; error: mean |inverted − encoded value| over the JPEG's pixels, value range [0, 1]")
    for size in args.sizes:
        with tempfile.TemporaryDirectory() as tmp:
            common = {"persons": 2, "per_person": max(1, args.images // 2), "size": size}
            simulate_dataset(Path(tmp) / "jet", SimConfig(**common, image_format="jpg", colormap="jet"), progress=False)
            simulate_dataset(Path(tmp) / "gray", SimConfig(**common), progress=False)
            files = sorted((Path(tmp) / "jet").rglob("*.jpg"))
            images = [np.asarray(Image.open(f).convert("RGB")) for f in files]
            truth = [np.asarray(Image.open(Path(tmp) / "gray" / f.relative_to(Path(tmp) / "jet").with_suffix(".png")),
                                dtype=np.float32) / 255 for f in files]
        line = [f"{size:>4}²"]
        for name, fn in (("k-d tree, 1024 colours", nearest_sample), ("curve projection", invert)):
            error = np.mean([np.abs(fn(im) - t).mean() for im, t in zip(images, truth, strict=True)])
            line.append(f"{name} {ms_per_image(fn, images, args.repeats):7.1f} ms/img (error {error:.4f})")
        speedup = ms_per_image(nearest_sample, images, 1) / ms_per_image(invert, images, 1)
        print("   ".join(line) + f"   ×{speedup:.0f}")


if __name__ == "__main__":
    main()
