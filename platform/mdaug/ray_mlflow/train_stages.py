"""The training stages before the DiT: the identity classifier, the VA-VAE and latent extraction. Each
returns what it wrote."""

from __future__ import annotations

import json
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import ray
import torch
from mlflow.tracking import MlflowClient
from ray.data.expressions import col

from mdaug.augment import JUDGE_AUGMENT
from mdaug.data.images import load_rows, load_split, model_channels
from mdaug.data.manifest import Manifest
from mdaug.data.ray_ingest import manifest_dataset, rows_dataset, shift_index
from mdaug.data.subsets import k_subset
from mdaug.flow.latents import EncodeBatch, LatentStats, latent_moments
from mdaug.models.classifier import ARCHITECTURES, build_classifier, load_classifier, save_classifier
from mdaug.models.vavae import VAE_ARCHITECTURES, AutoencoderKL, load_official_vavae, load_vae, save_vae
from mdaug.models.vavae_losses import IdentityLoss, VAELossConfig
from mdaug.ray_mlflow.config import TrainJobConfig
from mdaug.ray_mlflow.data_staging import manifest_location, publish_manifest
from mdaug.ray_mlflow.preflight import check_batch
from mdaug.ray_mlflow.ray_train import RunMarker, best_lightning_checkpoint, fit_with_ray, lightning_fit
from mdaug.ray_mlflow.tracking import EpochLogger, checkpoint_measurement, reconstruction_grid
from mdaug.storage import delete_dir, exists, local_copy, publish, read_text, write_text
from mdaug.training.classifier import accuracy, train_classifier
from mdaug.training.identity import reconstruction_identity


def data_channels(cfg: TrainJobConfig, manifest: Manifest) -> str:
    """The mode the VAE architecture reads this data in (pseudo-colour inverted for one-channel ones)."""
    return model_channels(manifest.channels, VAE_ARCHITECTURES[cfg.vae.architecture].in_channels)


# ---------------------------------------------------------------- identity classifier
def classifier_path(cfg: TrainJobConfig) -> Path:
    return cfg.out_path / "classifier" / "classifier.pt"


def classifier_uri(cfg: TrainJobConfig) -> str:
    """Where the identity classifier is in the job's storage."""
    return cfg.artifact("classifier", "classifier.pt")


def judge_path(cfg: TrainJobConfig) -> Path:
    return cfg.out_path / "classifier" / "judge.pt"


def judge_uri(cfg: TrainJobConfig) -> str:
    """Where the independent judge is in the job's storage (beside the identity classifier)."""
    return cfg.artifact("classifier", "judge.pt")


def train_identity_classifier(cfg: TrainJobConfig, manifest: Manifest, tracking: dict[str, str]) -> dict[str, Path]:
    """The person classifier that measures identity, on the real train split at the VAE's resolution; trained
    with identity-preserving perturbations (slight blur, noise), so it judges who walks, not pixel texture.
    Beside it, the independent judge (classifier.judge_arch, seed + 1, the same data): written first, so that
    classifier.pt, the stage's output, exists only with it."""
    size, ch = VAE_ARCHITECTURES[cfg.vae.architecture].resolution, data_channels(cfg, manifest)
    tx, ty = load_split(manifest, "train", size, ch)
    vx, vy = load_split(manifest, "val", size, ch)
    c = cfg.classifier
    about = {"manifest_hash": manifest.content_hash(), "size": size, "channels": ch}
    client = MlflowClient(tracking["tracking_uri"])
    written, words = {}, []
    data = ray.put((tx, ty))
    models = (  # name, what it is called, architecture, steps, width, seed, local path, published URI
        ("judge", "the independent judge", c.judge_arch, c.judge_steps, c.judge_width, cfg.seed + 1, judge_path(cfg),
         judge_uri(cfg)),
        ("classifier", "the identity classifier", "temporal", c.steps, c.width, cfg.seed, classifier_path(cfg),
         classifier_uri(cfg)))
    nets = [classifier_task(cfg, data, manifest.num_classes, steps, c.batch_size, JUDGE_AUGMENT, seed, c.lr, width,
                            arch=arch)  # both at once, where the cluster has room
            for _, _, arch, steps, width, seed, _, _ in models]
    for (name, called, arch, _, _, seed, path, uri), net in zip(models, ray.get(nets), strict=True):
        val_accuracy = accuracy(net, vx, vy)
        save_classifier(net, path, {"val_accuracy": val_accuracy, "seed": seed, **about})
        publish(path, uri)
        client.log_metric(tracking["run_id"], "val_accuracy" if name == "classifier" else "judge_val_accuracy",
                          val_accuracy)
        words.append(f"{called} ({ARCHITECTURES[arch]}, seed {seed}) {val_accuracy:.1%}")
        written[name] = path
    print(f"[classifier] accuracy on the {len(vy)} real validation images: {', '.join(words)}")
    return written


@ray.remote
def _fit_classifier(data: tuple[torch.Tensor, torch.Tensor], threads: int, *args, **kwargs) -> torch.nn.Module:
    torch.set_num_threads(threads)
    return train_classifier(*data, *args, **kwargs)


def classifier_task(cfg: TrainJobConfig, data: ray.ObjectRef, *args, **kwargs) -> ray.ObjectRef:
    """`training.classifier.train_classifier` on (images, labels) = `data`, as Ray work with the shape of one of
    the job's training workers (its CPUs and GPU), not on the driver; the trained net comes back."""
    return _fit_classifier.options(num_cpus=cfg.cpus_per_worker, num_gpus=cfg.gpus_per_worker).remote(
        data, max(1, int(cfg.cpus_per_worker)), *args, **kwargs)


def identity_judge(cfg: TrainJobConfig, manifest: Manifest) -> ray.ObjectRef | None:
    """The identity classifier and the real validation images, for the per-epoch identity metrics (None before
    the classifier stage has run)."""
    path = classifier_uri(cfg)
    if not exists(path):
        return None
    net, info = load_classifier(path)
    if info["manifest_hash"] != manifest.content_hash():
        raise ValueError(f"{path} was trained on another manifest; run `jobs/train.py --stage classifier` with "
                         "this one")
    vx, vy = load_split(manifest, "val", info["size"], info["channels"])
    return ray.put({"config": net.config, "state": net.state_dict(), "images": vx, "labels": vy,
                    "real_accuracy": info["val_accuracy"]})


def judge_from(ref: ray.ObjectRef | None) -> dict | None:
    """Inside a worker: the judge's classifier rebuilt, with its images."""
    if ref is None:
        return None
    judge = dict(ray.get(ref))
    net = build_classifier(judge.pop("config"))
    net.load_state_dict(judge.pop("state"))
    return judge | {"classifier": net.eval()}


# ---------------------------------------------------------------- VA-VAE
def vae_data(cfg: TrainJobConfig, manifest: Manifest) -> tuple[Manifest, str, list]:
    """(manifest, its location, train rows) the autoencoder trains on: its images in the job's storage."""
    m, location = (publish_manifest(Manifest.load(cfg.vae.data), cfg.vae.data, cfg.storage) if cfg.vae.data
                   else (manifest, manifest_location(cfg, manifest)))
    return m, location, k_subset(m, cfg.vae.train_per_person)


def _vae_module(job: dict[str, Any], identity_ref: ray.ObjectRef | None = None):
    from mdaug.models.foundation import build_foundation
    from mdaug.models.vavae_losses import PerceptualLoss
    from mdaug.training.vae_module import VAEModule

    v = job["vae"]
    loss = replace(VAELossConfig(), disc_start=v["disc_start"], kl_weight=v["kl_weight"],
                   identity_weight=v["identity_weight"])
    with local_copy(v["perceptual_weights"]) as lpips, local_copy(v["vf_weights"]) as vf:  # storage URIs too
        perceptual = PerceptualLoss(lpips) if lpips else None
        foundation = build_foundation(v["vf_encoder"], vf)
    identity = IdentityLoss(judge_from(identity_ref)["classifier"]) if identity_ref is not None else None
    module = VAEModule(VAE_ARCHITECTURES[v["architecture"]], loss, lr=v["lr"], betas=tuple(v["betas"]),
                       foundation=foundation, perceptual=perceptual, identity=identity, schedule=v["schedule"])
    if v["checkpoint"]:
        c = VAE_ARCHITECTURES[v["architecture"]]
        official = load_official_vavae(v["checkpoint"], ch=c.ch, ch_mult=c.ch_mult, num_res_blocks=c.num_res_blocks,
                                       attn_resolutions=c.attn_resolutions, z_channels=c.z_channels,
                                       resolution=c.resolution, in_channels=c.in_channels, out_ch=c.out_ch)
        module.vae.load_state_dict(official.state_dict())
    return module


def vae_report(judge: dict | None):
    """Per epoch (rank 0): the reconstruction identity ratio on the task's validation images, and a grid."""
    def report(module) -> tuple[dict[str, float], Any]:
        metrics = {}
        if judge is not None:
            module.vae.eval()
            metrics = reconstruction_identity(module.vae, judge["classifier"], judge["images"], judge["labels"],
                                              judge["real_accuracy"])
            module.vae.train()
        return metrics, reconstruction_grid(module)
    return report


def vae_loop(config: dict[str, Any]) -> None:
    torch.manual_seed(config["job"]["seed"])
    module = _vae_module(config["job"], config["identity_encoder"])
    logger = EpochLogger(config["tracking_uri"], config["run_id"], vae_report(judge_from(config["judge"])), "vae",
                         "reconstructions")
    lightning_fit(module, config, [logger])


def _identity_encoder(cfg: TrainJobConfig, m: Manifest, rows: list, size: int, ch: str) -> ray.ObjectRef | None:
    """A person classifier on the autoencoder's own training data, for its identity loss."""
    if cfg.vae.identity_weight <= 0:
        return None
    net = ray.get(classifier_task(cfg, ray.put(load_rows(m, rows, size, ch)), m.num_classes, cfg.vae.identity_steps,
                                  augment_cfg=JUDGE_AUGMENT, seed=cfg.seed))
    save_classifier(net, cfg.out_path / "vae" / "identity_encoder.pt", {"trained_on": m.content_hash()})
    return ray.put({"config": net.config, "state": net.state_dict()})


def train_vae(cfg: TrainJobConfig, manifest: Manifest, tracking: dict[str, str]) -> dict[str, Path]:
    m, m_path, rows = vae_data(cfg, manifest)
    check_batch(len(rows), cfg, cfg.vae.batch_size)
    size, ch = VAE_ARCHITECTURES[cfg.vae.architecture].resolution, data_channels(cfg, m)
    datasets = {"train": rows_dataset(m, rows, size, ch), "val": manifest_dataset(m, "val", size, ch)}
    loop_cfg = {"epochs": cfg.vae.epochs, "batch_size": cfg.vae.batch_size, **tracking,
                "steps_per_epoch": cfg.vae.steps_per_epoch, "find_unused": cfg.vae.vf_encoder == "none",
                "identity_encoder": _identity_encoder(cfg, m, rows, size, ch),
                "judge": identity_judge(cfg, manifest)}
    inputs = {"data": m.content_hash(), "rows": [r.sha256 for r in rows], "val": manifest.content_hash()}
    result = fit_with_ray(cfg, vae_loop, loop_cfg, datasets, inputs)
    ckpt = torch.load(best_lightning_checkpoint(result), map_location="cpu", weights_only=True)
    state = ckpt["state_dict"]
    vae = AutoencoderKL(VAE_ARCHITECTURES[cfg.vae.architecture])
    vae.load_state_dict({k.removeprefix("vae."): v for k, v in state.items() if k.startswith("vae.")})
    out = cfg.out_path / "vae"
    out.mkdir(parents=True, exist_ok=True)
    provenance = {"manifest": m_path, "manifest_hash": m.content_hash(), "images": [r.sha256 for r in rows],
                  "persons": sorted({r.person for r in rows}), "train_per_person": cfg.vae.train_per_person}
    identity = checkpoint_measurement(ckpt, ("recon_identity_ratio", "recon_identity_accuracy"))
    if identity:
        print(f"[vae] reconstruction identity ratio {identity['recon_identity_ratio']:.2f} at the exported epoch: the "
              f"person classifier recognises {identity['recon_identity_accuracy']:.0%} of the reconstructed "
              "validation images")
    save_vae(vae, out / "vae.pt", cfg.vae.architecture, {"manifest_hash": m.content_hash(), "provenance": provenance,
                                                         "identity_metrics": identity})
    publish(out / "vae.pt", cfg.artifact("vae", "vae.pt"))
    RunMarker(cfg).finish()
    return {"vae": out / "vae.pt"}


# ---------------------------------------------------------------- latents
def encoded_rows(cfg: TrainJobConfig, manifest: Manifest, rows: list, vae_uri: str, size: int,
                 channels: str) -> ray.data.Dataset:
    """The rows' images as VA-VAE latents (columns latent, label, index, sha256), encoded by an actor pool of
    cfg.workers encoders (one GPU each when the job has GPUs)."""
    gpu = cfg.gpus_per_worker > 0
    return rows_dataset(manifest, rows, size, channels, with_hash=True).map_batches(
        EncodeBatch, fn_constructor_kwargs={"vae_uri": vae_uri, "architecture": cfg.vae.architecture},
        batch_size=64, compute=ray.data.ActorPoolStrategy(size=cfg.workers), num_gpus=1 if gpu else 0,
        num_cpus=cfg.cpus_per_worker if not gpu else 1)


def _train_moments(block: dict[str, np.ndarray], n_train: int) -> dict[str, np.ndarray]:
    """Where a block of latents is: the per-channel moments of its train rows (those with index < n_train), and
    the latents' shape."""
    latent = block["latent"]
    part_sum, part_sq, count = latent_moments(torch.from_numpy(latent[block["index"] < n_train]))
    return {"sum": part_sum.numpy()[None], "sq": part_sq.numpy()[None], "count": np.array([count]),
            "shape": np.array([latent.shape[1:]])}


def extract_latents(cfg: TrainJobConfig, manifest: Manifest, tracking: dict[str, str]) -> dict[str, Path]:
    """Encode the train and val images in one pass of one actor pool; latents/{train,val} Parquet + stats.json,
    in the job's storage."""
    vae_uri = cfg.artifact("vae", "vae.pt")
    vae = load_vae(vae_uri, cfg.vae.architecture)  # refuses another architecture's checkpoint before any work
    out = cfg.out_path / "latents"
    size, ch = vae.config.resolution, data_channels(cfg, manifest)
    n_train = len(manifest.split("train"))
    encoded = encoded_rows(cfg, manifest, manifest.split("train") + manifest.split("val"), vae_uri, size,
                           ch).materialize()
    for split, first, last in (("train", 0, n_train), ("val", n_train, None)):
        within = col("index") >= first if last is None else (col("index") >= first) & (col("index") < last)
        part = encoded.filter(expr=within).map_batches(
            partial(shift_index, by=first), batch_format="numpy")
        target = cfg.artifact("latents", split)
        delete_dir(target)  # a rerun replaces the files; write_parquet would add to them
        part.write_parquet(target)
    parts = encoded.map_batches(partial(_train_moments, n_train=n_train), batch_size=None,
                                batch_format="numpy").take_all()  # a few numbers per block reach the driver
    stats = LatentStats.from_moments(((torch.from_numpy(p["sum"]), torch.from_numpy(p["sq"]), int(p["count"]))
                                      for p in parts), vae.identity())
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / "stats.json", json.dumps({
        "mean": stats.mean.tolist(), "std": stats.std.tolist(), "vae_identity": stats.vae_identity,
        "count": stats.count, "vae_uri": vae_uri, "manifest_hash": manifest.content_hash(),
        "channels": ch, "latent_shape": parts[0]["shape"].tolist(),
    }, indent=1))
    publish(out / "stats.json", cfg.artifact("latents", "stats.json"))
    return {"latents": out, "stats": out / "stats.json"}


def read_stats(cfg: TrainJobConfig) -> tuple[LatentStats, dict]:
    """The latent statistics and what they came from (the VA-VAE's location among them), from the storage."""
    location = cfg.artifact("latents", "stats.json")
    if not exists(location):
        raise FileNotFoundError(f"{location} not found; run `jobs/train.py --stage latents` first")
    d = json.loads(read_text(location))
    stats = LatentStats(torch.tensor(d["mean"]), torch.tensor(d["std"]), d["vae_identity"], d["count"])
    return stats, d
