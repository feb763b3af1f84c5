"""Checks that run before any training starts: manifest, file hashes, resources."""

from __future__ import annotations

import hashlib

import ray

from mdaug.cluster.config import TrainJobConfig
from mdaug.data.manifest import Manifest
from mdaug.storage import read_bytes


def load_verified_manifest(path: str) -> Manifest:
    """Load the manifest and check every file still has the content hash recorded in it."""
    if not path:
        raise ValueError("--data MANIFEST is required; make one with `mdaug split ROOT --out MANIFEST`")
    m = Manifest.load(path)
    changed, missing = [], []
    for r in m.rows:
        try:
            if hashlib.sha256(read_bytes(m.file(r))).hexdigest() != r.sha256:
                changed.append(r.path)
        except (FileNotFoundError, IsADirectoryError):
            missing.append(r.path)
    if missing or changed:
        raise ValueError(
            f"manifest {path} no longer matches {m.root}: {len(missing)} files missing {missing[:5]}, "
            f"{len(changed)} files changed {changed[:5]}; re-run `mdaug split` to make a new manifest"
        )
    return m


def check_resources(cfg: TrainJobConfig) -> None:
    """More workers than the cluster can place is an error now, not a hang later."""
    res = ray.cluster_resources()
    cpus, gpus = res.get("CPU", 0.0), res.get("GPU", 0.0)
    need_cpu, need_gpu = cfg.workers * cfg.cpus_per_worker, cfg.workers * cfg.gpus_per_worker
    if need_gpu > gpus:
        raise ValueError(f"{cfg.workers} workers × {cfg.gpus_per_worker} GPU need {need_gpu:g} GPUs; "
                         f"the cluster has {gpus:g}. Lower --workers or --gpus-per-worker.")
    if need_cpu > cpus:
        raise ValueError(f"{cfg.workers} workers × {cfg.cpus_per_worker} CPU need {need_cpu:g} CPUs; "
                         f"the cluster has {cpus:g}. Lower --workers or cpus_per_worker.")


def check_batch(n_train: int, cfg: TrainJobConfig, batch_size: int) -> None:
    """Each worker must see at least one full batch per epoch."""
    per_worker = n_train // cfg.workers
    if per_worker < batch_size:
        raise ValueError(f"{n_train} training images over {cfg.workers} workers leave {per_worker} per worker, "
                         f"fewer than one batch of {batch_size}; lower the batch size or the workers")
