"""`--help` of every entry point, wall time (median of 5; target ≤ 1.5 s each on a 2-core machine).

Baselines, same run: a bare `python -c pass`, and `python -c "import torch"` (what a --help that imported torch
would at least cost)."""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MDAUG = Path(sys.executable).parent / "mdaug"
COMMANDS = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "python -c 'import torch'": [sys.executable, "-c", "import torch"],
    **{f"{s} --help": [sys.executable, str(ROOT / s), "--help"] for s in (
        "jobs/pipeline.py", "jobs/train.py", "jobs/generate.py", "tuning/sweep_sampling.py",
        "eval/augmentation_gain.py", "eval/compare.py")},
    **{f"mdaug {c} --help": [str(MDAUG), c, "--help"] for c in ("simulate", "validate", "split")},
}


def seconds(argv: list[str], repeats: int = 5) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        subprocess.run(argv, capture_output=True, check=True)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    base = seconds(COMMANDS["python -c pass"])
    for name, argv in COMMANDS.items():
        t = seconds(argv)
        mark = "" if name.startswith("python") else ("  ok" if t <= 1.5 else "  OVER 1.5 s")
        print(f"{name:42s} {t:6.2f} s  (×{t / base:.1f} a bare interpreter){mark}")


if __name__ == "__main__":
    main()
