"""Generate a synthetic data set (ROOT/ID_k/*.png, same layout and format as the training data) from a
trained DiT, or from a registered generator (--model models:/mdaug-generator@best: its DiT, VA-VAE and sampling
settings, downloaded beside --out). Atomic: the folder appears only when complete; a rerun after a crash finishes
the missing images with the same bytes.
Sampling settings: the `sampling` section of --config (configs/tiny.yaml by default), then the registered model's,
then --sampling-config (e.g. the sweep's best_sampling.yaml), then dotted key=value overrides of the section,
e.g. steps=50 cfg_scale=4 cfg_interval_start=0.1 timestep_shift=0.3 method=heun."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

from mdaug.config import add_config_arguments, load_config
from mdaug.locks import OutputLocked
from mdaug.secrets import location, location_path
from mdaug.storage import is_uri


def resolve_dit(value: str, tracking_dir: Path) -> str:
    """A checkpoint path or storage URI, or an MLflow run id whose outputs/dit.pt is downloaded."""
    if is_uri(value) or Path(value).is_file():
        return value
    from mlflow.tracking import MlflowClient

    from mdaug.ray_mlflow.tracking import tracking_uri

    try:
        return MlflowClient(tracking_uri(tracking_dir)).download_artifacts(value, "outputs/dit.pt")
    except Exception as err:  # noqa: BLE001 - any MLflow failure means: not a usable run id
        raise ValueError(f"--dit {value!r} is neither a checkpoint file nor an MLflow run with outputs/dit.pt") from err


def default_tracking_dir(dit: str | None, out: Path) -> Path:
    """The folder of the sqlite MLflow store without --tracking-dir: the training --out of a local --dit (two
    folders above dit.pt), else the folder that holds --out (a storage URI names no local folder)."""
    if dit and not is_uri(dit):
        return Path(dit).resolve().parent.parent
    return out.resolve().parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    source = ap.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", type=location, help="a registered generator, models:/NAME@ALIAS or "
                        "models:/NAME/VERSION "
                        "(e.g. models:/mdaug-generator@best), in the registry of --tracking-dir or MLFLOW_TRACKING_URI")
    source.add_argument("--dit", type=location, help="DiT checkpoint (dit.pt: a path or a storage URI such as "
                    "s3://bucket/mdaug/train/dit_k5/dit.pt) or the MLflow run id of a DiT training run")
    ap.add_argument("--vae", type=location, help="VAE checkpoint (default: the one recorded in the DiT checkpoint)")
    ap.add_argument("--per-person", type=int, required=True, help="images per person")
    ap.add_argument("--out", type=location_path, required=True,
                    help="output folder (must not exist, or hold this generation)")
    ap.add_argument("--sampling-config", type=Path, help="YAML of sampling settings (e.g. best_sampling.yaml)")
    ap.add_argument("--persons", help="comma-separated person ids (default: all)")
    ap.add_argument("--seed", type=int, default=0, help="run seed; each image's seed derives from it")
    ap.add_argument("--workers", type=int, default=2, help="generator actors (one GPU each with --gpus-per-worker)")
    ap.add_argument("--gpus-per-worker", type=float, default=0.0, help="GPUs per actor")
    ap.add_argument("--batch", type=int, help="images per sampler batch (part of the result's identity; default: the "
                    "registered model's, else 64)")
    ap.add_argument("--tracking-dir", type=Path, help="where the sqlite MLflow store is (default: the training --out "
                    "of a local --dit, else the folder holding --out)")
    ap.add_argument("--resource-wait-s", type=float, default=0.0, help="seconds an autoscaling cluster gets to add "
                    "the nodes the actors need before the job is refused (default %(default)s: refuse at once)")
    add_config_arguments(ap, "sampling")
    a = ap.parse_args()
    from mdaug.ray_mlflow.generate_job import run_generate_job  # after the arguments: --help stays fast
    from mdaug.ray_mlflow.generator_model import download_generator
    from mdaug.ray_mlflow.tracking import folder_store, tracking_uri

    try:
        if a.model and not a.tracking_dir and folder_store():
            raise ValueError("--model needs --tracking-dir (the folder holding mlflow.db) or MLFLOW_TRACKING_URI")
        tracking = a.tracking_dir or default_tracking_dir(a.dit, a.out)
        layers = []
        dit, vae, batch = a.dit and resolve_dit(a.dit, tracking), a.vae, a.batch or 64
        if a.model:  # beside the output, kept: a resumed run names the same VA-VAE file
            model = download_generator(a.model, tracking_uri(tracking), a.out.parent / f".{a.out.name}.model")
            print(f"{a.model}: {model.name} version {model.version}")
            layers.append(model.sampling)
            dit, vae, batch = str(model.dit), a.vae or str(model.vae), a.batch or model.batch
        if a.sampling_config:
            layers.append(yaml.safe_load(a.sampling_config.read_text()))
        sampling = load_config(a.config, a.overrides, "sampling", layers)
        persons = [int(p) for p in a.persons.split(",")] if a.persons else None
        run_generate_job(dit, a.out, a.per_person, sampling, persons, a.seed, vae, a.workers, a.gpus_per_worker,
                         tracking_dir=tracking, batch=batch, resource_wait_s=a.resource_wait_s)
    except (ValueError, FileExistsError, FileNotFoundError, TypeError, OutputLocked) as err:
        print(f"generate: error: {err}", file=sys.stderr)
        raise SystemExit(2) from err


if __name__ == "__main__":
    main()
