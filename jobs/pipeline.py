"""Run the mdaug pipeline end to end (embedded simulator data by default). Stages are skipped when
their output exists and matches their config; --from forces a stage and those after it."""

from __future__ import annotations

import argparse
from pathlib import Path

from mdaug.pipeline import STAGES, PipelineConfig, run_pipeline


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", type=Path, help="your ROOT/ID_k folder; default: simulate 31 walkers")
    ap.add_argument("--preset", choices=("tiny",), default="tiny", help="model and data size preset")
    ap.add_argument("--out", type=Path, default=Path("runs/pipeline"), help="output folder (default %(default)s)")
    ap.add_argument("--from", dest="start", choices=STAGES, help="rerun this stage and every later one")
    ap.add_argument("--only", choices=STAGES, help="run only this stage")
    a = ap.parse_args()
    run_pipeline(PipelineConfig(out=a.out, data=a.data, preset=a.preset), start=a.start, only=a.only)


if __name__ == "__main__":
    main()
