"""The DiT stage: train on the latents of the first k train images per person (a generator for the
evaluation at k), measure the identity ratio every validation epoch, export the generator with its
provenance (what its VA-VAE and it trained on)."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import ray
import torch

from mdaug.data.manifest import Manifest
from mdaug.data.subsets import k_subset
from mdaug.flow.latents import LatentStats, decode_latents
from mdaug.imaging import labelled_grid, tensor_image
from mdaug.models.dit import dit_config
from mdaug.models.vavae import VAE_ARCHITECTURES, load_vae, vae_record
from mdaug.ray_mlflow.config import TrainJobConfig
from mdaug.ray_mlflow.data_staging import manifest_location, publish_manifest
from mdaug.ray_mlflow.preflight import check_batch
from mdaug.ray_mlflow.ray_train import RunMarker, best_lightning_checkpoint, fit_with_ray, lightning_fit
from mdaug.ray_mlflow.tracking import EpochLogger, checkpoint_measurement
from mdaug.ray_mlflow.train_stages import classifier_uri, encoded_rows, identity_judge, judge_from, read_stats
from mdaug.storage import exists, publish
from mdaug.training.identity import generator_identity, identity_seeds


def _dit_module(job: dict[str, Any], stats: LatentStats, shape: list[int], classes: int, task_classes: int):
    from mdaug.flow.sampler import SamplingConfig
    from mdaug.training.dit_module import DiTModule

    d = job["dit"]
    cfg = dit_config(d["size"], input_size=shape[-1], in_channels=shape[0], patch_size=d["patch_size"],
                     num_classes=classes, class_dropout=d["class_dropout"])
    preview = SamplingConfig(steps=d["preview_steps"], cfg_scale=d["preview_cfg"],  # two passes: faster on CPU
                             cfg_mode="batched" if job["gpus_per_worker"] > 0 else "two_pass")
    return DiTModule(cfg, stats, lr=d["lr"], ema_decay=d["ema_decay"], preview_sampling=preview,
                     preview_per_person=d["identity_per_person"], preview_classes=task_classes)


def dit_report(vae_uri: str, architecture: str, judge: dict | None, channels: str):
    """Per epoch (rank 0): decode the preview samples, measure the identity ratio, draw one per person."""
    vae = load_vae(vae_uri, architecture)

    def report(module) -> tuple[dict[str, float], Any]:
        if module.last_samples is None:
            return {}, None
        images = decode_latents(vae, module.last_samples, module.stats).float().clamp(-1, 1)
        per = module.hparams.preview_per_person
        metrics, caption = {}, None
        if judge is not None:
            labels, _ = identity_seeds(module.hparams.preview_classes, per)
            metrics = generator_identity(images, labels, judge["classifier"], judge["real_accuracy"])
            caption = (f"identity ratio {metrics['identity_ratio']:.2f}: the classifier recognises "
                       f"{metrics['identity_accuracy']:.0%} of these persons (real: {judge['real_accuracy']:.0%})")
        rows = [(f"ID {i + 1}", [tensor_image(img, channels)]) for i, img in enumerate(images[::per])]
        return metrics, labelled_grid(rows, cell=64, caption=caption)
    return report


def dit_loop(config: dict[str, Any]) -> None:
    torch.manual_seed(config["job"]["seed"])
    stats = LatentStats.from_dict(config["stats"])
    module = _dit_module(config["job"], stats, config["latent_shape"], config["num_classes"], config["task_classes"])
    report = dit_report(config["vae_uri"], config["job"]["vae"]["architecture"], judge_from(config["judge"]),
                        config["channels"])
    lightning_fit(module, config, [EpochLogger(config["tracking_uri"], config["run_id"], report, config["label"])])


def _keep(batch: dict[str, np.ndarray], hashes: frozenset[str]) -> dict[str, np.ndarray]:
    chosen = np.isin(batch["sha256"], list(hashes))
    return {k: v[chosen] for k, v in batch.items() if k != "sha256"}


def other_persons(cfg: TrainJobConfig, manifest: Manifest, vae_uri: str, channels: str) -> tuple[ray.data.Dataset,
                                                                                                  Manifest, list]:
    """The other persons' train images (dit.other_data) as latents of the task's VA-VAE, labelled after the task's
    persons (task labels + their own); refused if it holds any image of the task manifest."""
    if not cfg.dit.other_data:
        raise ValueError(f"dit.other_share={cfg.dit.other_share} needs dit.other_data=MANIFEST: a split manifest "
                         "(mdaug split) of other persons' recordings")
    other, _ = publish_manifest(Manifest.load(cfg.dit.other_data), cfg.dit.other_data, cfg.storage)
    rows = other.split("train")
    if not rows:
        raise ValueError(f"dit.other_data={cfg.dit.other_data} has no train images")
    shared = {r.sha256 for r in rows} & {r.sha256 for r in manifest.rows}
    if shared:
        raise ValueError(f"dit.other_data={cfg.dit.other_data} shares {len(shared)} images with the task's manifest "
                         "(e.g. " + manifest.file(next(r for r in manifest.rows if r.sha256 in shared)) + "): it must "
                         "hold other persons only; the generator may see no task image beyond its k-subset")
    size = VAE_ARCHITECTURES[cfg.vae.architecture].resolution
    encoded = encoded_rows(cfg, other, rows, vae_uri, size, channels).map_batches(
        _relabel, fn_kwargs={"offset": manifest.num_classes}, batch_format="numpy").materialize()
    return encoded, other, rows


def _relabel(batch: dict[str, np.ndarray], offset: int) -> dict[str, np.ndarray]:
    return {"latent": batch["latent"], "label": batch["label"] + offset, "index": batch["index"]}


def train_dit(cfg: TrainJobConfig, manifest: Manifest, tracking: dict[str, str]) -> dict[str, Path]:
    from mdaug.training.dit_module import export_dit

    rows = k_subset(manifest, cfg.dit.train_per_person, cfg.dit.subset_seed)
    check_batch(len(rows), cfg, cfg.dit.batch_size)
    stats, info = read_stats(cfg)
    if info["manifest_hash"] != manifest.content_hash():
        raise ValueError("the latents were extracted from another manifest; re-run --stage latents with this one")
    hashes = frozenset(r.sha256 for r in rows)
    train = ray.data.read_parquet(cfg.artifact("latents", "train")).map_batches(
        _keep, fn_kwargs={"hashes": hashes}, batch_format="numpy")
    classes, provenance_other = manifest.num_classes, {}
    if cfg.dit.other_share > 0:
        other_ds, other, other_rows = other_persons(cfg, manifest, info["vae_uri"], info["channels"])
        # the task's rows repeated so that about other_share of every batch is other persons
        copies = max(1, round(len(other_rows) * (1 - cfg.dit.other_share) / (cfg.dit.other_share * len(rows))))
        train = train.materialize()
        train = train.union(*[train] * (copies - 1), other_ds)
        classes += other.num_classes
        provenance_other = {"dit_other": {"manifest": cfg.dit.other_data, "manifest_hash": other.content_hash(),
                                          "images": sorted(r.sha256 for r in other_rows),
                                          "persons": sorted({r.person for r in other_rows}),
                                          "share": cfg.dit.other_share, "task_copies": copies}}
        print(f"[dit k={cfg.dit.train_per_person or 'all'}] also learning {len(other_rows)} images of "
              f"{other.num_classes} other persons ({cfg.dit.other_data}; the task's {len(rows)} images ×{copies})")
    datasets = {"train": train,
                "val": ray.data.read_parquet(cfg.artifact("latents", "val")).drop_columns(["sha256"])}
    loop_cfg = {"epochs": cfg.dit.epochs, "batch_size": cfg.dit.batch_size, "stats": stats.to_dict(),
                "steps_per_epoch": cfg.dit.steps_per_epoch, "latent_shape": info["latent_shape"],
                "num_classes": classes, "task_classes": manifest.num_classes, "vae_uri": info["vae_uri"],
                "channels": info["channels"], "judge": identity_judge(cfg, manifest), **tracking}
    inputs = {"manifest": manifest.content_hash(), "latents": info,
              "other": provenance_other.get("dit_other", {}).get("manifest_hash")}
    result = fit_with_ray(cfg, dit_loop, loop_cfg | {"label": f"dit k={cfg.dit.train_per_person or 'all'}"
                                                              f" replicate {cfg.dit.replicate}"}, datasets, inputs)
    module = _dit_module(cfg.to_dict(), stats, info["latent_shape"], classes, manifest.num_classes)
    ckpt = torch.load(best_lightning_checkpoint(result), map_location="cpu", weights_only=True)
    module.load_state_dict(ckpt["state_dict"])
    out = cfg.dit_dir
    out.mkdir(parents=True, exist_ok=True)
    formats = Counter(Path(r.path).suffix.lower().lstrip(".") for r in manifest.rows)
    identity = checkpoint_measurement(ckpt, ("identity_ratio", "identity_accuracy"))
    if identity:
        name = f"dit k={cfg.dit.train_per_person or 'all'} replicate {cfg.dit.replicate}"
        print(f"[{name}] identity ratio {identity['identity_ratio']:.2f} at the exported epoch: the person classifier "
              f"recognises {identity['identity_accuracy']:.0%} of its samples")
    provenance = {"vae": vae_record(info["vae_uri"]).get("provenance") or {},
                  "dit": {"manifest_hash": manifest.content_hash(), "images": sorted(hashes),
                          "train_per_person": cfg.dit.train_per_person, "subset_seed": cfg.dit.subset_seed},
                  **provenance_other}
    classifier = classifier_uri(cfg)
    export_dit(module, out / "dit.pt", {"vae_uri": info["vae_uri"], "manifest_hash": manifest.content_hash(),
                                          "manifest_uri": manifest_location(cfg, manifest),
                                          "classifier_uri": classifier if exists(classifier) else None,
                                          "labels": {str(k): v for k, v in manifest.labels.items()},
                                          "channels": info["channels"],
                                          "image_format": "jpg" if formats.most_common(1)[0][0] in ("jpg", "jpeg")
                                          else "png", "job": asdict(cfg.dit), "provenance": provenance,
                                          "identity_metrics": identity})
    publish(out / "dit.pt", cfg.artifact(out.name, "dit.pt"))
    RunMarker(cfg).finish()
    return {"dit": out / "dit.pt"}
