"""Train one stage of mdaug on Ray: the identity classifier, the VA-VAE, latent extraction, or the DiT.

Runs on a local Ray by default; under `ray job submit` or with RAY_ADDRESS set, on that cluster.
Every run is an MLflow run (MLFLOW_TRACKING_URI, else sqlite under --out).
Settings: the `train` section of --config (configs/tiny.yaml by default), then dotted key=value overrides of it,
e.g. vae.lr=1e-3 dit.epochs=5 workers=4 gpus_per_worker=1 keep_checkpoints=3 storage=s3://bucket/mdaug."""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace

from mdaug.config import add_config_arguments, load_config
from mdaug.locks import OutputLocked
from mdaug.ray_mlflow.config import STAGES
from mdaug.secrets import location


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--stage", choices=STAGES, required=True, help="classifier: the person classifier that measures "
                    "identity (real train split only); vae: train the VA-VAE (vae.data=MANIFEST for other persons' "
                    "data, vae.train_per_person=K); latents: encode the train/val splits with it; dit: train the DiT "
                    "on those latents (dit.train_per_person=K: a generator for the evaluation at k = K)")
    ap.add_argument("--data", required=True, type=location, help="split manifest from `mdaug split`")
    ap.add_argument("--out", default="runs/train", help="output folder for checkpoints, latents and MLflow "
                    "(default %(default)s)")
    ap.add_argument("--resume", action="store_true", help="continue this stage's last unfinished run from its "
                    "checkpoint even if its settings changed (with the same settings and inputs, a rerun resumes "
                    "without it)")
    add_config_arguments(ap, "train")
    a = ap.parse_args()
    try:
        cfg = load_config(a.config, a.overrides, "train")
        from mdaug.ray_mlflow.train_job import run_train_job  # after the configuration: a refusal takes seconds

        run_train_job(replace(cfg, stage=a.stage, data=a.data, out=a.out, resume=a.resume))
    except (ValueError, FileNotFoundError, OutputLocked) as err:
        print(f"train: error: {err}", file=sys.stderr)
        raise SystemExit(2) from err


if __name__ == "__main__":
    main()
