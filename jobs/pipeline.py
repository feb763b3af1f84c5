"""Run the mdaug pipeline end to end: simulate (unless --data) → validate → split → identity classifier →
VA-VAE → latents → DiT per k → sampling sweep → generate → evaluate → report. Stages whose output exists and
matches the configuration are skipped; --from forces a stage and every later one. The last lines printed are
the verdict and where the report and the MLflow UI are."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mdaug.data.validate import ValidationError
from mdaug.evaluation.budget import BudgetError
from mdaug.evaluation.leakage import LeakageError
from mdaug.pipeline import PIPELINE_PRESETS, STAGES, pipeline_config, run_pipeline
from mdaug.pipeline.runner import OutputLocked


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", type=Path, help="your ROOT/ID_k folder; default: simulate 31 walkers")
    ap.add_argument("--preset", choices=tuple(PIPELINE_PRESETS), default="tiny",
                    help="tiny: 2-core CPU, ≤ 10 min (default); small: one GPU, 128²; paper: GPUs, f16d32 VA-VAE, "
                         "DiT-B/1, 256² pseudo-colour")
    ap.add_argument("--out", type=Path, default=Path("runs/pipeline"), help="output folder (default %(default)s)")
    ap.add_argument("--from", dest="start", choices=STAGES, help="rerun this stage and every later one")
    ap.add_argument("--only", choices=STAGES, help="run only this stage")
    ap.add_argument("--workers", type=int, help="Ray Train workers and generator actors (default: the preset's "
                    "training workers — tiny: 1 worker using both cores — and 2 generator actors)")
    ap.add_argument("--storage", help="where Ray workers read and write artifacts on a cluster (s3://bucket/prefix "
                    "or a folder every node mounts); default: the output folder")
    ap.add_argument("--resource-wait-s", type=float, help="seconds an autoscaling cluster gets to add the nodes a "
                    "stage needs before it is refused (default 0: at once; 900 in the cluster recipes)")
    ap.add_argument("--vae-checkpoint", help="official VA-VAE checkpoint to fine-tune from (paper preset)")
    ap.add_argument("--vf-weights", help="local DINOv2 folder (Hugging Face format) for the VF loss")
    a = ap.parse_args()
    try:
        cfg = pipeline_config(a.preset, a.vae_checkpoint, a.vf_weights, out=a.out, data=a.data, workers=a.workers,
                              storage=a.storage, resource_wait_s=a.resource_wait_s)
        run_pipeline(cfg, start=a.start, only=a.only)
    except (ValueError, FileNotFoundError, FileExistsError, ValidationError, LeakageError, BudgetError,
            OutputLocked) as err:
        print(f"pipeline: error: {err}", file=sys.stderr)
        raise SystemExit(2) from err


if __name__ == "__main__":
    main()
