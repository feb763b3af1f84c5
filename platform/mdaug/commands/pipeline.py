"""Run the mdaug pipeline end to end: simulate (unless --data) → validate → split → identity classifier →
VA-VAE → latents → DiT per k → sampling sweep → generate → evaluate → report. Stages whose output exists and
matches the configuration are skipped; --from forces a stage and every later one. The last lines printed are
the verdict and where the report and the MLflow UI are.

Settings: --config (configs/tiny.yaml by default; small: one GPU; paper: GPUs), then dotted key=value overrides,
e.g. workers=4 storage=s3://bucket/mdaug resource_wait_s=900 train.vae.checkpoint=vavae.pt evaluation.seeds=8."""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace

from mdaug.config import add_config_arguments, load_config
from mdaug.pipeline.stages import STAGES
from mdaug.secrets import location_path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=location_path,
                    help="your ROOT/ID_k folder; default: simulate 31 walkers (the config's sim)")
    ap.add_argument("--out", type=location_path, help="output folder (default: the config's out, runs/pipeline)")
    ap.add_argument("--from", dest="start", choices=STAGES, help="rerun this stage and every later one")
    ap.add_argument("--only", choices=STAGES, help="run only this stage")
    add_config_arguments(ap, None)
    a = ap.parse_args()
    try:
        cfg = load_config(a.config, a.overrides)
        cfg = replace(cfg, **{k: v for k, v in {"data": a.data, "out": a.out}.items() if v is not None})
    except (ValueError, FileNotFoundError) as err:  # refused in seconds: Ray, MLflow, Lightning not imported yet
        print(f"pipeline: error: {err}", file=sys.stderr)
        raise SystemExit(2) from err
    from mdaug.data.validate import ValidationError
    from mdaug.evaluation.budget import BudgetError
    from mdaug.evaluation.leakage import LeakageError
    from mdaug.pipeline import run_pipeline
    from mdaug.pipeline.runner import OutputLocked

    try:
        run_pipeline(cfg, start=a.start, only=a.only)
    except (ValueError, FileNotFoundError, FileExistsError, ValidationError, LeakageError, BudgetError,
            OutputLocked) as err:
        print(f"pipeline: error: {err}", file=sys.stderr)
        raise SystemExit(2) from err


if __name__ == "__main__":
    main()
