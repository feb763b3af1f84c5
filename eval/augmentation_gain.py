"""Does augmentation help the person classifier? Trains every arm (real, real+synthetic@r, real+classic,
real+synthetic+classic, synthetic-only, oracle, random-labels, A/A) for every k and seed on Ray, tests each on
the same held-out real test split, and reports the pre-registered primary comparison (real+synthetic at the
reference ratio vs real, Holm over k) with the controls and secondary comparisons beside it, bootstrap CIs,
MLflow runs and an HTML report. Refuses generators that saw more real images than the arms they serve."""

from __future__ import annotations

import argparse
from pathlib import Path

from mdaug.evaluation.config import PRESETS, eval_config, parse_ks
from mdaug.ray_mlflow.eval_job import run_evaluation


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", required=True, help="split manifest of the real data (mdaug split)")
    ap.add_argument("--synthetic", required=True, nargs="+",
                    help="generated folders (jobs/generate.py), e.g. one per k; the arms at k use the one whose "
                         "generator saw, of the task's persons, only the first k train images per person")
    ap.add_argument("--oracle", help="ID_k folder of fresh simulator images of the same persons (simulated data)")
    ap.add_argument("--preset", choices=tuple(PRESETS), default="default", help="defaults for the options below")
    ap.add_argument("--k", type=parse_ks, help="real train images per person, e.g. 5,10,20,all")
    ap.add_argument("--control-k", type=parse_ks, help="k values at which the controls and secondary arms run "
                    "(default: every k; tiny preset: the first)")
    ap.add_argument("--seeds", type=int, help="repetitions per (arm, k) (≥ 2; ≥ 7 lets the exact sign-flip test reach "
                    "a Holm-adjusted 5 %% over two k; default 8)")
    ap.add_argument("--ratios", type=lambda s: tuple(float(x) for x in s.split(",")),
                    help="generated images per real image, e.g. 0.5,1,2")
    ap.add_argument("--reference-ratio", type=float, help="the pre-registered primary comparison's ratio, also of "
                    "the combined, oracle and random-label arms (default 1 if among --ratios, else the first)")
    ap.add_argument("--steps", type=int, help="optimizer steps per training, the same for every arm; doubled until "
                    "the largest arm's validation accuracy converges (see --max-steps)")
    ap.add_argument("--max-steps", type=int, help="largest step budget the convergence probe may choose")
    ap.add_argument("--allow-generator-extra-data", action="store_true", default=None,
                    help="compare arms whose generator saw more real images than k anyway, labelled so")
    ap.add_argument("--image-size", type=int, help="classifier input size in pixels (default: the data's)")
    ap.add_argument("--cpus-per-run", type=float, help="CPUs per training task")
    ap.add_argument("--gpus-per-run", type=float, help="GPUs per training task (e.g. 0.25 to share a GPU)")
    ap.add_argument("--experiment", help="MLflow experiment (default mdaug-eval)")
    ap.add_argument("--out", default="runs/eval", help="report folder; must not exist (default %(default)s)")
    ap.add_argument("--tracking-dir", type=Path, help="folder of the sqlite MLflow store when MLFLOW_TRACKING_URI "
                    "is unset (default: the parent of --out)")
    a = ap.parse_args()
    cfg = eval_config(a.preset, data=a.data, synthetic=tuple(a.synthetic), oracle=a.oracle, ks=a.k,
                      control_ks=a.control_k, seeds=a.seeds, ratios=a.ratios, reference_ratio=a.reference_ratio,
                      steps=a.steps, max_steps=a.max_steps, allow_generator_extra_data=a.allow_generator_extra_data,
                      image_size=a.image_size, cpus_per_run=a.cpus_per_run, gpus_per_run=a.gpus_per_run,
                      experiment=a.experiment, out=a.out)
    outcome = run_evaluation(cfg, a.tracking_dir)
    print(f"report: {outcome.report}")


if __name__ == "__main__":
    main()
