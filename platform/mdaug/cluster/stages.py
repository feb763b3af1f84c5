"""The three training stages: VA-VAE, latent extraction, DiT. Each returns what it wrote."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
import ray
import torch

from mdaug.cluster.config import TrainJobConfig
from mdaug.cluster.preflight import check_batch
from mdaug.cluster.ray_train import best_lightning_checkpoint, fit_with_ray, lightning_fit
from mdaug.cluster.tracking import EpochLogger, reconstruction_grid
from mdaug.data.manifest import Manifest
from mdaug.data.ray_ingest import manifest_dataset
from mdaug.flow.latents import LatentStats, decode_latents
from mdaug.imaging import labelled_grid, tensor_image
from mdaug.models.dit import dit_config
from mdaug.models.vavae import VAE_PRESETS, AutoencoderKL, load_official_vavae, load_vae, save_vae
from mdaug.models.vavae_losses import VAELossConfig


def channels_of(preset: str) -> str:
    return "gray" if VAE_PRESETS[preset].in_channels == 1 else "rgb"


# ---------------------------------------------------------------- VA-VAE
def _vae_module(job: dict[str, Any]):
    from mdaug.models.foundation import build_foundation
    from mdaug.models.vavae_losses import PerceptualLoss
    from mdaug.training.vae_module import VAEModule

    v = job["vae"]
    loss = replace(VAELossConfig(), disc_start=v["disc_start"], kl_weight=v["kl_weight"])
    perceptual = PerceptualLoss(v["perceptual_weights"]) if v["perceptual_weights"] else None
    module = VAEModule(VAE_PRESETS[v["preset"]], loss, lr=v["lr"],
                       foundation=build_foundation(v["vf_encoder"], v["vf_weights"]), perceptual=perceptual)
    if v["checkpoint"]:
        c = VAE_PRESETS[v["preset"]]
        official = load_official_vavae(v["checkpoint"], ch=c.ch, ch_mult=c.ch_mult, num_res_blocks=c.num_res_blocks,
                                       attn_resolutions=c.attn_resolutions, z_channels=c.z_channels,
                                       resolution=c.resolution, in_channels=c.in_channels, out_ch=c.out_ch)
        module.vae.load_state_dict(official.state_dict())
    return module


def vae_loop(config: dict[str, Any]) -> None:
    torch.manual_seed(config["job"]["seed"])
    module = _vae_module(config["job"])
    logger = EpochLogger(config["tracking_uri"], config["run_id"], reconstruction_grid)
    lightning_fit(module, config, [logger])


def train_vae(cfg: TrainJobConfig, manifest: Manifest, tracking: dict[str, str]) -> dict[str, Path]:
    check_batch(len(manifest.split("train")), cfg, cfg.vae.batch_size)
    size, ch = VAE_PRESETS[cfg.vae.preset].resolution, channels_of(cfg.vae.preset)
    datasets = {s: manifest_dataset(manifest, s, size, ch) for s in ("train", "val")}
    loop_cfg = {"epochs": cfg.vae.epochs, "batch_size": cfg.vae.batch_size, **tracking,
                "find_unused": cfg.vae.vf_encoder == "none"}
    result = fit_with_ray(cfg, vae_loop, loop_cfg, datasets)
    state = torch.load(best_lightning_checkpoint(result), map_location="cpu", weights_only=False)["state_dict"]
    vae = AutoencoderKL(VAE_PRESETS[cfg.vae.preset])
    vae.load_state_dict({k.removeprefix("vae."): v for k, v in state.items() if k.startswith("vae.")})
    out = cfg.out_path / "vae"
    out.mkdir(parents=True, exist_ok=True)
    save_vae(vae, out / "vae.pt", cfg.vae.preset, {"manifest_hash": manifest.content_hash()})
    return {"vae": out / "vae.pt"}


# ---------------------------------------------------------------- latents
class EncodeBatch:
    """Ray Data actor: the VAE encoder, loaded once per actor."""

    def __init__(self, vae_path: str, preset: str) -> None:
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        self.vae = load_vae(vae_path, preset).to(self.device)

    @torch.no_grad()
    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        x = torch.from_numpy(batch["image"]).to(self.device)
        z = self.vae.encode(x).mean.float().cpu().numpy()
        return {"latent": z, "label": batch["label"], "sha256": batch["sha256"]}


def extract_latents(cfg: TrainJobConfig, manifest: Manifest, tracking: dict[str, str]) -> dict[str, Path]:
    vae_path = cfg.out_path / "vae" / "vae.pt"
    vae = load_vae(vae_path, cfg.vae.preset)  # refuses another preset's checkpoint before any work
    out = cfg.out_path / "latents"
    size, ch = vae.config.resolution, channels_of(cfg.vae.preset)
    gpu = cfg.gpus_per_worker > 0
    for split in ("train", "val"):
        ds = manifest_dataset(manifest, split, size, ch, with_hash=True).map_batches(
            EncodeBatch, fn_constructor_kwargs={"vae_path": str(vae_path), "preset": cfg.vae.preset},
            batch_size=64, concurrency=cfg.workers, num_gpus=1 if gpu else 0,
            num_cpus=cfg.cpus_per_worker if not gpu else 1)
        target = out / split
        shutil.rmtree(target, ignore_errors=True)  # a rerun replaces the files; write_parquet would add to them
        ds.write_parquet(str(target))
    train = ray.data.read_parquet(str(out / "train"))
    latents = train.select_columns(["latent"])
    stats = LatentStats.from_latents((b["latent"] for b in latents.iter_torch_batches(batch_size=256)), vae.identity())
    (out / "stats.json").write_text(json.dumps({
        "mean": stats.mean.tolist(), "std": stats.std.tolist(), "vae_identity": stats.vae_identity,
        "count": stats.count, "vae_path": str(vae_path), "manifest_hash": manifest.content_hash(),
        "latent_shape": list(latents.take(1)[0]["latent"].shape),
    }, indent=1))
    return {"latents": out, "stats": out / "stats.json"}


def read_stats(out: Path) -> tuple[LatentStats, dict]:
    path = out / "latents" / "stats.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found; run `jobs/train.py --stage latents` first")
    d = json.loads(path.read_text())
    stats = LatentStats(torch.tensor(d["mean"]), torch.tensor(d["std"]), d["vae_identity"], d["count"])
    return stats, d


# ---------------------------------------------------------------- DiT
def _dit_module(job: dict[str, Any], stats: LatentStats, shape: list[int], classes: int):
    from mdaug.flow.sampler import SamplingConfig
    from mdaug.training.dit_module import DiTModule

    d = job["dit"]
    cfg = dit_config(d["size"], input_size=shape[-1], in_channels=shape[0], patch_size=d["patch_size"],
                     num_classes=classes, class_dropout=d["class_dropout"])
    preview = SamplingConfig(steps=d["preview_steps"], cfg_scale=d["preview_cfg"])
    return DiTModule(cfg, stats, lr=d["lr"], ema_decay=d["ema_decay"], preview_sampling=preview)


def _sample_grid_fn(vae_path: str, preset: str):
    vae = load_vae(vae_path, preset)

    def grid(module):
        if module.last_samples is None:
            return None
        images = decode_latents(vae, module.last_samples, module.stats)
        return labelled_grid([(f"ID {i + 1}", [tensor_image(img)]) for i, img in enumerate(images)], cell=64)
    return grid


def dit_loop(config: dict[str, Any]) -> None:
    torch.manual_seed(config["job"]["seed"])
    stats = LatentStats.from_dict(config["stats"])
    module = _dit_module(config["job"], stats, config["latent_shape"], config["num_classes"])
    logger = EpochLogger(config["tracking_uri"], config["run_id"],
                         _sample_grid_fn(config["vae_path"], config["job"]["vae"]["preset"]))
    lightning_fit(module, config, [logger])


def train_dit(cfg: TrainJobConfig, manifest: Manifest, tracking: dict[str, str]) -> dict[str, Path]:
    from mdaug.training.dit_module import export_dit

    check_batch(len(manifest.split("train")), cfg, cfg.dit.batch_size)
    stats, info = read_stats(cfg.out_path)
    if info["manifest_hash"] != manifest.content_hash():
        raise ValueError("the latents were extracted from another manifest; re-run --stage latents with this one")
    datasets = {s: ray.data.read_parquet(str(cfg.out_path / "latents" / s)).drop_columns(["sha256"])
                for s in ("train", "val")}
    loop_cfg = {"epochs": cfg.dit.epochs, "batch_size": cfg.dit.batch_size, "stats": stats.to_dict(),
                "latent_shape": info["latent_shape"], "num_classes": manifest.num_classes,
                "vae_path": info["vae_path"], **tracking}
    result = fit_with_ray(cfg, dit_loop, loop_cfg, datasets)
    module = _dit_module(cfg.to_dict(), stats, info["latent_shape"], manifest.num_classes)
    ckpt = torch.load(best_lightning_checkpoint(result), map_location="cpu", weights_only=False)
    module.load_state_dict(ckpt["state_dict"])
    out = cfg.out_path / "dit"
    out.mkdir(parents=True, exist_ok=True)
    formats = Counter(Path(r.path).suffix.lower().lstrip(".") for r in manifest.rows)
    export_dit(module, out / "dit.pt", {"vae_path": info["vae_path"], "manifest_hash": manifest.content_hash(),
                                          "manifest_path": str(Path(cfg.data).resolve()),
                                          "labels": {str(k): v for k, v in manifest.labels.items()},
                                          "channels": manifest.channels,
                                          "image_format": "jpg" if formats.most_common(1)[0][0] in ("jpg", "jpeg")
                                          else "png", "job": asdict(cfg.dit)})
    return {"dit": out / "dit.pt", "stats": cfg.out_path / "latents" / "stats.json"}


STAGE_FUNCTIONS = {"vae": train_vae, "latents": extract_latents, "dit": train_dit}
