"""Simulator throughput: 31 persons × 40 images at 128² (target ≤ 60 s on a 2-core machine).

Baseline, same process: the same simulator driven one spectrogram at a time (no batching), timed on
one image per person and scaled to the full set."""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from mdaug.sim import SimConfig, simulate_dataset
from mdaug.sim.dataset import simulate_images
from mdaug.sim.persons import draw_persons


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--persons", type=int, default=31)
    ap.add_argument("--per-person", type=int, default=40)
    ap.add_argument("--size", type=int, default=128)
    a = ap.parse_args()
    cfg = SimConfig(persons=a.persons, per_person=a.per_person, size=a.size)
    n = cfg.persons * cfg.per_person
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        simulate_dataset(Path(tmp) / "data", cfg, progress=False)
        batched = time.perf_counter() - t0
    persons = draw_persons(cfg.persons, cfg.seed)
    t0 = time.perf_counter()
    for p in range(cfg.persons):
        simulate_images(persons, [(p, 0)], cfg)
    one_by_one = (time.perf_counter() - t0) / cfg.persons * n
    print(f"simulate {cfg.persons}×{cfg.per_person} at {cfg.size}²: {batched:.1f} s "
          f"({n / batched:.1f} img/s, files written, target ≤ 60 s)")
    print(f"baseline one spectrogram at a time (estimated for {n}): {one_by_one:.1f} s; "
          f"speed-up ×{one_by_one / batched:.2f}")


if __name__ == "__main__":
    main()
