"""Does augmentation help the person classifier? Trains every arm (real, real+synthetic@r, real+classic,
real+synthetic+classic, synthetic-only, oracle, random-labels, A/A) for every k and seed on Ray, tests each on
the same held-out real test split, and reports the pre-registered primary comparison (real+synthetic at the
reference ratio vs real, Holm over k) with the controls and secondary comparisons beside it, bootstrap CIs,
MLflow runs and an HTML report. Refuses generators that saw more real images than the arms they serve.
Settings: the `evaluation` section of --config (configs/tiny.yaml by default), then dotted key=value overrides of
it, e.g. ks=[5,10,20,0] (0: all) control_ks=null seeds=8 ratios=[0.5,1,2] steps=300 gpus_per_run=0.25."""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import replace
from pathlib import Path

from mdaug.config import add_config_arguments, load_config
from mdaug.locks import OutputLocked
from mdaug.secrets import location

OVERRIDE = re.compile(r"[A-Za-z_][\w.]*=")  # a dotted configuration key and '='


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, type=location, help="split manifest of the real data (mdaug split)")
    ap.add_argument("--synthetic", required=True, nargs="+", type=location,
                    help="generated folders (jobs/generate.py), e.g. one per k; the arms at k use the one whose "
                         "generator saw, of the task's persons, only the first k train images per person")
    ap.add_argument("--oracle", type=location,
                    help="ID_k folder of fresh simulator images of the same persons (simulated data)")
    ap.add_argument("--out", default="runs/eval", type=location,
                    help="report folder; must not exist (default %(default)s)")
    ap.add_argument("--tracking-dir", type=Path, help="folder of the sqlite MLflow store when MLFLOW_TRACKING_URI "
                    "is unset (default: the parent of --out)")
    add_config_arguments(ap, "evaluation")
    a = ap.parse_args()
    # `--synthetic A B ks=[5]`: the list ends at the first key=value, which starts the overrides
    first = next((i for i, v in enumerate(a.synthetic) if OVERRIDE.match(v)), len(a.synthetic))
    synthetic, a.overrides = a.synthetic[:first], [*a.synthetic[first:], *a.overrides]
    if not synthetic:
        ap.error("--synthetic needs at least one generated folder before the key=value overrides")
    try:
        cfg = replace(load_config(a.config, a.overrides, "evaluation"), data=a.data, synthetic=tuple(synthetic),
                      oracle=a.oracle, out=a.out)
        from mdaug.ray_mlflow.eval_job import run_evaluation  # after the configuration: a refusal takes seconds

        outcome = run_evaluation(cfg, a.tracking_dir)
    except (ValueError, FileNotFoundError, FileExistsError, OutputLocked) as err:  # leakage, budget errors too
        print(f"evaluate: error: {err}", file=sys.stderr)
        raise SystemExit(2) from err
    print(f"report: {outcome.report}")


if __name__ == "__main__":
    main()
