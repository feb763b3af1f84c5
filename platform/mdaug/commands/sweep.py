"""Ray Tune sweep of sampling settings (CFG scale, steps, CFG interval, timestep shift) for a trained DiT,
scored on real validation images: by default the accuracy there of a classifier trained on each trial's images
alone (objective=tstr, maximised; objective=frechet: Fréchet distance on person-classifier features, minimised),
with conditional accuracy, diversity and images/s beside it. Writes best_sampling.yaml for jobs/generate.py.
Rerun after an interruption with the same arguments: the sweep resumes, keeping its finished trials.
Settings: the `sweep` section of --config (configs/tiny.yaml by default), then dotted key=value overrides of it,
e.g. trials=16 per_person=8 steps=[8,250] search=optuna gpus_per_trial=1."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mdaug.config import add_config_arguments, load_config
from mdaug.locks import OutputLocked
from mdaug.secrets import location


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dit", required=True, type=location, help="DiT checkpoint (dit.pt)")
    ap.add_argument("--data", type=location, help="split manifest (default: the one recorded in the DiT checkpoint)")
    ap.add_argument("--classifier", type=location,
                    help="identity classifier (default: the one the DiT checkpoint names, its classifier_uri)")
    ap.add_argument("--out", type=Path, default=Path("runs/sweep"), help="output folder (default %(default)s)")
    ap.add_argument("--resource-wait-s", type=float, default=0.0, help="seconds an autoscaling cluster gets to "
                    "add a node for one trial before the sweep is refused (default %(default)s: refuse at once)")
    ap.add_argument("--experiment", default="mdaug", help="MLflow experiment (default %(default)s)")
    ap.add_argument("--tracking-dir", type=Path, help="sqlite MLflow store folder when MLFLOW_TRACKING_URI is "
                    "unset (default: --out)")
    add_config_arguments(ap, "sweep")
    a = ap.parse_args()
    try:
        cfg = load_config(a.config, a.overrides, "sweep")
        from mdaug.ray_mlflow.sweep import run_sweep  # after the configuration: a refusal takes seconds

        run_sweep(a.dit, a.data, a.out, cfg, classifier=a.classifier, experiment=a.experiment,
                  tracking_dir=a.tracking_dir, resource_wait_s=a.resource_wait_s)
    except (ValueError, FileNotFoundError, OutputLocked) as err:
        print(f"sweep: error: {err}", file=sys.stderr)
        raise SystemExit(2) from err


if __name__ == "__main__":
    main()
