"""Ray Tune sweep of sampling settings (CFG scale, steps, CFG interval, timestep shift) for a trained DiT,
scored on real validation images: Fréchet distance on person-classifier features (minimised), with
conditional accuracy, diversity and images/s beside it. Writes best_sampling.yaml for jobs/generate.py.
Rerun after an interruption with the same arguments: the sweep resumes, keeping its finished trials."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mdaug.ray_mlflow.sweep import SweepConfig, run_sweep


def main() -> None:
    d = SweepConfig()
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--dit", required=True, help="DiT checkpoint (dit.pt)")
    ap.add_argument("--data", help="split manifest (default: the one recorded in the DiT checkpoint)")
    ap.add_argument("--classifier", help="identity classifier (default: classifier/classifier.pt beside the DiT's "
                    "folder)")
    ap.add_argument("--out", type=Path, default=Path("runs/sweep"), help="output folder (default %(default)s)")
    ap.add_argument("--trials", type=int, default=d.trials, help="trial budget (default %(default)s)")
    ap.add_argument("--per-person", type=int, default=d.per_person, help="images per person per trial")
    ap.add_argument("--search", choices=("random", "optuna"), default=d.search, help="search algorithm")
    ap.add_argument("--steps-range", type=int, nargs=2, default=d.steps, metavar=("LO", "HI"),
                    help="sampler steps range (default %(default)s)")
    ap.add_argument("--seed", type=int, default=d.seed, help="seeds the search and the trials' images")
    ap.add_argument("--cpus-per-trial", type=float, default=d.cpus_per_trial, help="Ray CPUs per trial")
    ap.add_argument("--gpus-per-trial", type=float, default=d.gpus_per_trial,
                    help="Ray GPUs per trial; > 0: trials generate and score on their GPU (default %(default)s)")
    ap.add_argument("--resource-wait-s", type=float, default=0.0, help="seconds an autoscaling cluster gets to "
                    "add a node for one trial before the sweep is refused (default %(default)s: refuse at once)")
    ap.add_argument("--experiment", default="mdaug", help="MLflow experiment (default %(default)s)")
    ap.add_argument("--tracking-dir", type=Path, help="sqlite MLflow store folder when MLFLOW_TRACKING_URI is "
                    "unset (default: the folder above the DiT's)")
    a = ap.parse_args()
    cfg = SweepConfig(trials=a.trials, per_person=a.per_person, search=a.search, steps=tuple(a.steps_range),
                      seed=a.seed, cpus_per_trial=a.cpus_per_trial, gpus_per_trial=a.gpus_per_trial)
    try:
        run_sweep(a.dit, a.data, a.out, cfg, classifier=a.classifier, experiment=a.experiment,
                  tracking_dir=a.tracking_dir, resource_wait_s=a.resource_wait_s)
    except (ValueError, FileNotFoundError) as err:
        print(f"sweep: error: {err}", file=sys.stderr)
        raise SystemExit(2) from err


if __name__ == "__main__":
    main()
