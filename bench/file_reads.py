"""Reading and hashing a manifest's files one after another vs on mdaug.storage's thread pool (IO_THREADS), from a
local folder and from an S3 server (moto's, on this machine: a round trip without a network's latency), both
measured in this run. What `mdaug.storage.io_map` decides from: threads for remote storage only."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from s3_server import s3_server  # noqa: E402  (moto's server mode, as the storage tests use it)

from mdaug.storage import IO_THREADS, file_sha256, io_map, join, write_bytes  # noqa: E402


def write_images(root: Path, n: int, size: int) -> list[str]:
    """n gray PNGs of smoothed noise (a few KB each, as the tiny simulator's)."""
    rng = np.random.default_rng(0)
    names = []
    for i in range(n):
        noise = rng.random((size // 4, size // 4)) * 255
        img = Image.fromarray(noise.astype(np.uint8)).resize((size, size), Image.BILINEAR)
        names.append(f"ID_{i % 31 + 1}/{i}.png")
        (root / names[-1]).parent.mkdir(parents=True, exist_ok=True)
        img.save(root / names[-1])
    return names


def files_per_s(locations: list[str], remote: bool) -> float:
    """`storage.io_map` itself, told the files are remote (its thread pool) or not (one after another)."""
    t0 = time.perf_counter()
    list(io_map(file_sha256, locations, remote))
    return len(locations) / (time.perf_counter() - t0)


def compare(what: str, locations: list[str], repeats: int) -> None:
    serial = max(files_per_s(locations, False) for _ in range(repeats))
    pooled = max(files_per_s(locations, True) for _ in range(repeats))
    print(f"{what:<28} one at a time {serial:8.0f} files/s   {IO_THREADS} threads {pooled:8.0f} files/s   "
          f"ratio ×{pooled / serial:.2f}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--files", type=int, default=1860, help="files (default 1860: the tiny data set's count)")
    p.add_argument("--size", type=int, default=64, help="image side in pixels")
    p.add_argument("--repeats", type=int, default=3, help="best of this many passes per way")
    args = p.parse_args()
    print(f"{args.files} PNGs of {args.size}², {os.cpu_count()} CPUs, read + sha256 per file")
    with tempfile.TemporaryDirectory() as tmp:
        names = write_images(Path(tmp), args.files, args.size)
        compare("local folder", [str(Path(tmp) / n) for n in names], args.repeats)
        with s3_server("bench") as env:
            os.environ.update(env)
            remote = [join("s3://bench/files", n) for n in names]
            for n, location in zip(names, remote, strict=True):
                write_bytes(location, (Path(tmp) / n).read_bytes())
            compare("S3 (moto, this machine)", remote, args.repeats)


if __name__ == "__main__":
    main()
