"""`jobs/train.py`: pre-flight checks, one MLflow run, the stage on Ray, artifacts."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

from mdaug.config import flatten, to_yaml
from mdaug.data.manifest import Manifest, Row
from mdaug.data.subsets import k_subset
from mdaug.locks import job_lock
from mdaug.ray_mlflow.cluster_check import check_shared
from mdaug.ray_mlflow.config import TrainJobConfig
from mdaug.ray_mlflow.data_staging import manifest_location, publish_manifest
from mdaug.ray_mlflow.datasets import log_manifest_inputs
from mdaug.ray_mlflow.dit_stage import train_dit
from mdaug.ray_mlflow.preflight import VAE_FILES, check_resources, check_resume, check_vae_files, load_verified_manifest
from mdaug.ray_mlflow.ray_session import connect_ray
from mdaug.ray_mlflow.tracking import driver_system_metrics, log_params, mlflow_run, tracking_uri
from mdaug.ray_mlflow.train_stages import extract_latents, train_identity_classifier, train_vae, vae_data
from mdaug.storage import absolute, is_uri, write_text

STAGE_FUNCTIONS = {"classifier": train_identity_classifier, "vae": train_vae, "latents": extract_latents,
                   "dit": train_dit}


def stage_inputs(cfg: TrainJobConfig, manifest: Manifest) -> tuple[Manifest, str, dict[str, list[Row]]]:
    """(manifest, its location, {split: rows}): what the stage trains and validates on, for MLflow's datasets."""
    if cfg.stage == "vae":
        m, location, rows = vae_data(cfg, manifest)
        return m, location, {"train": rows, "val": m.split("val")}
    train = k_subset(manifest, cfg.dit.train_per_person, cfg.dit.subset_seed) if cfg.stage == "dit" \
        else manifest.split("train")
    return manifest, manifest_location(cfg, manifest), {"train": train, "val": manifest.split("val")}


def run_train_job(cfg: TrainJobConfig, parent_run_id: str | None = None,
                  verified: set[str] | None = None) -> dict[str, Path]:
    """Everything is checked before training starts; the MLflow run ends FINISHED or FAILED. `verified`: the
    manifests whose files this process checked already (preflight.load_verified_manifest)."""
    files = {k: absolute(v) for k in VAE_FILES if (v := getattr(cfg.vae, k))}
    cfg = replace(cfg, vae=replace(cfg.vae, **files))  # the same file for every worker, whatever its folder
    if cfg.stage == "vae":
        check_vae_files(cfg.vae)
    manifest, _ = publish_manifest(load_verified_manifest(cfg.data, verified), cfg.data, cfg.storage)
    connect_ray(cfg.workers * cfg.cpus_per_worker + 2)
    check_shared(cfg.storage, cfg.out_path, f"jobs/train.py --stage {cfg.stage}")
    check_resources(cfg)
    check_resume(cfg)
    with job_lock(cfg.out_path):  # a second job writing the same --out is refused at once
        return _run_stage(cfg, manifest, parent_run_id)


def _run_stage(cfg: TrainJobConfig, manifest: Manifest, parent_run_id: str | None) -> dict[str, Path]:
    """The checked stage, under the job's lock on its output folder."""
    out = cfg.out_path
    out.mkdir(parents=True, exist_ok=True)
    tags = {"stage": cfg.stage, "config_hash": cfg.config_hash(),
            "manifest_hash": manifest.content_hash()}
    if cfg.stage == "dit":
        tags["replicate"] = str(cfg.dit.replicate)
    if cfg.stage == "dit" and cfg.dit.train_per_person:
        tags["train_per_person"] = str(cfg.dit.train_per_person)
        tags["subset_seed"] = str(cfg.dit.subset_seed)
    tracking_dir = Path(cfg.tracking_dir).resolve() if cfg.tracking_dir else out
    with mlflow_run(tracking_dir, cfg.experiment, f"train-{cfg.stage}", tags, parent_run_id) as (client, run_id):
        log_params(client, run_id, flatten(cfg.to_dict()))
        stage_dir = cfg.dit_dir if cfg.stage == "dit" else out / cfg.stage
        stage_dir.mkdir(parents=True, exist_ok=True)
        config_file = stage_dir / "config.yaml"
        write_text(config_file, to_yaml(cfg))
        client.log_artifact(run_id, str(config_file))
        if not is_uri(cfg.data):
            client.log_artifact(run_id, str(Path(cfg.data).resolve()))
        t0 = time.perf_counter()
        tracking = {"tracking_uri": tracking_uri(tracking_dir), "run_id": run_id}
        log_manifest_inputs(client, run_id, *stage_inputs(cfg, manifest))
        with driver_system_metrics(tracking["tracking_uri"], run_id):
            outputs = STAGE_FUNCTIONS[cfg.stage](cfg, manifest, tracking)
        client.log_metric(run_id, "stage_wall_time_s", time.perf_counter() - t0)
        for path in outputs.values():
            if path.is_file():
                client.log_artifact(run_id, str(path), artifact_path="outputs")
        print(f"[{cfg.stage}] done in {time.perf_counter() - t0:.0f} s; MLflow run {run_id}; outputs: "
              + ", ".join(f"{k}={v}" for k, v in outputs.items()))
    return outputs
