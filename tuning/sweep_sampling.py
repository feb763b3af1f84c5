"""Ray Tune sweep of sampling settings (CFG scale, steps, CFG interval, timestep shift) for a trained DiT,
scored on real validation images: Fréchet distance on person-classifier features (minimised), with
conditional accuracy, diversity and images/s beside it. Writes best_sampling.yaml for jobs/generate.py."""

from __future__ import annotations

import argparse
from pathlib import Path

from mdaug.cluster.sweep import SweepConfig, run_sweep


def main() -> None:
    d = SweepConfig()
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--dit", required=True, help="DiT checkpoint (dit.pt)")
    ap.add_argument("--data", help="split manifest (default: the one recorded in the DiT checkpoint)")
    ap.add_argument("--out", type=Path, default=Path("runs/sweep"), help="output folder (default %(default)s)")
    ap.add_argument("--trials", type=int, default=d.trials, help="trial budget (default %(default)s)")
    ap.add_argument("--per-person", type=int, default=d.per_person, help="images per person per trial")
    ap.add_argument("--search", choices=("random", "optuna"), default=d.search, help="search algorithm")
    ap.add_argument("--steps-range", type=int, nargs=2, default=d.steps, metavar=("LO", "HI"),
                    help="sampler steps range (default %(default)s)")
    ap.add_argument("--classifier-steps", type=int, default=d.classifier_steps,
                    help="optimizer steps of the feature classifier trained on the real train split")
    ap.add_argument("--seed", type=int, default=d.seed, help="image seeds derive from it")
    a = ap.parse_args()
    cfg = SweepConfig(trials=a.trials, per_person=a.per_person, search=a.search, steps=tuple(a.steps_range),
                      classifier_steps=a.classifier_steps, seed=a.seed)
    run_sweep(a.dit, a.data, a.out, cfg)


if __name__ == "__main__":
    main()
