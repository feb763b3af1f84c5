"""Train one stage of mdaug on Ray: the identity classifier, the VA-VAE, latent extraction, or the DiT.

Runs on a local Ray by default; under `ray job submit` or with RAY_ADDRESS set, on that cluster.
Every run is an MLflow run (MLFLOW_TRACKING_URI, else sqlite under --out).
Overrides: dotted key=value pairs, e.g. vae.lr=1e-3 dit.epochs=5 keep_checkpoints=3."""

from __future__ import annotations

import argparse
import sys

from mdaug.ray_mlflow.config import PRESETS, STAGES, build_config
from mdaug.ray_mlflow.train_job import run_train_job


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--stage", choices=STAGES, required=True, help="classifier: the person classifier that measures "
                    "identity (real train split only); vae: train the VA-VAE (vae.data=MANIFEST for other persons' "
                    "data, vae.train_per_person=K); latents: encode the train/val splits with it; dit: train the DiT "
                    "on those latents (dit.train_per_person=K: a generator for the evaluation at k = K)")
    ap.add_argument("--data", required=True, help="split manifest from `mdaug split`")
    ap.add_argument("--preset", choices=list(PRESETS), default="tiny",
                    help="tiny: 64² CPU; small: 128²; paper: f16d32 VA-VAE + DiT-B/1 at 256² on GPUs")
    ap.add_argument("--out", help="output folder for checkpoints, latents and MLflow (default runs/train)")
    ap.add_argument("--experiment", help="MLflow experiment name (default mdaug)")
    ap.add_argument("--workers", type=int, help="Ray Train workers (DDP processes; default 2)")
    ap.add_argument("--gpus-per-worker", type=float, help="GPUs per worker; > 0 turns on bf16 and torch.compile")
    ap.add_argument("--epochs", type=int, help="epochs of this stage (default: the preset's)")
    ap.add_argument("--resume", action="store_true", help="continue this stage's last run from its checkpoint")
    ap.add_argument("overrides", nargs="*", help="key=value configuration overrides (dotted keys)")
    a = ap.parse_args()
    overrides = list(a.overrides)
    if a.epochs is not None and a.stage in ("vae", "dit"):
        overrides.append(f"{a.stage}.epochs={a.epochs}")
    try:
        cfg = build_config(a.stage, a.data, a.preset, overrides, out=a.out, experiment=a.experiment,
                           workers=a.workers, gpus_per_worker=a.gpus_per_worker, resume=a.resume or None)
        run_train_job(cfg)
    except (ValueError, FileNotFoundError) as err:
        print(f"train: error: {err}", file=sys.stderr)
        raise SystemExit(2) from err


if __name__ == "__main__":
    main()
