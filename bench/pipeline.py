"""The README's main job, timed: the tiny pipeline from nothing in a fresh output folder (target ≤ 10 min on a
2-core machine), its peak memory (all processes of the run: driver, Ray workers, actors), and per stage.

Baseline, same run: the immediate rerun, which must skip every finished stage."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


PAGE = os.sysconf("SC_PAGE_SIZE")


def tree_rss(root: int) -> int:
    """Resident bytes of `root` and every descendant (Linux /proc), including Ray's daemons it started."""
    parent, rss = {}, {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                parent[int(d.name)] = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
                rss[int(d.name)] = int((d / "statm").read_text().split()[1]) * PAGE
            except (OSError, IndexError, ValueError):
                continue
    tree, grew = {root}, True
    while grew:
        more = {p for p, pp in parent.items() if pp in tree} - tree
        tree |= more
        grew = bool(more)
    return sum(rss.get(p, 0) for p in tree)


def run_and_watch(cmd: list[str]) -> tuple[float, float, str]:
    """(seconds, peak summed RSS in GiB of the process and its descendants, output)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO)
    peak = 0.0
    stop = threading.Event()

    def watch() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, tree_rss(proc.pid) / 2**30)
            time.sleep(0.5)

    t = threading.Thread(target=watch, daemon=True)
    t.start()
    out, _ = proc.communicate()
    stop.set()
    t.join()
    if proc.returncode != 0:
        sys.exit(f"pipeline failed ({proc.returncode}):\n{out[-4000:]}")
    return time.perf_counter() - t0, peak, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", type=Path, help="output folder (default: a temporary one)")
    ap.add_argument("--config", default="tiny", help="configuration (default %(default)s)")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = (a.out or Path(tmp) / "pipeline").resolve()
        cmd = [sys.executable, "jobs/pipeline.py", "--config", a.config, "--out", str(out)]
        wall, peak, text = run_and_watch(cmd)
        rerun, _, again = run_and_watch(cmd)
        stages = json.loads((out / "stages.json").read_text())
    print(text[text.rfind("pipeline finished"):])
    print("seconds per stage: " + ", ".join(f"{k} {v['seconds']:.0f}" for k, v in stages.items()))
    print(f"pipeline ({a.config}) from nothing: {wall:.0f} s = {wall / 60:.1f} min "
          f"({wall / 600:.2f} of the 10-minute budget); peak memory (all processes) {peak:.2f} GiB")
    print(f"baseline: the immediate rerun {rerun:.0f} s, skipping {again.count('up to date, skipped')} stages "
          f"(×{wall / rerun:.1f})")


if __name__ == "__main__":
    main()
