"""DiT training on normalised latents: rectified-flow loss, label dropout for CFG, EMA, and preview samples
(preview_per_person per person of the first preview_classes — the task's persons, before any other persons'
labels —, EMA weights, fixed seeds) at the end of each validation, shared out over the
processes and gathered on the first.
Latent statistics live in the checkpoint."""

from __future__ import annotations

import hashlib
import io
from dataclasses import asdict

import lightning.pytorch as pl
import torch

from mdaug import storage
from mdaug.flow.latents import LatentStats
from mdaug.flow.sampler import SamplingConfig, sample
from mdaug.flow.transport import flow_loss
from mdaug.models.dit import DiTConfig, LightningDiT
from mdaug.models.ema import make_ema, update_ema
from mdaug.training.identity import identity_seeds
from mdaug.training.vae_module import as_config


class DiTModule(pl.LightningModule):
    def __init__(self, dit: DiTConfig | dict, stats: LatentStats, lr: float = 2e-4,
                 betas: tuple[float, float] = (0.9, 0.95), weight_decay: float = 0.0, ema_decay: float = 0.9999,
                 cosine_weight: float = 1.0,
                 preview_sampling: SamplingConfig | dict = SamplingConfig(steps=25, cfg_scale=4.0),
                 preview_per_person: int = 1, preview_classes: int | None = None) -> None:
        super().__init__()
        dit = as_config(DiTConfig, dit)
        preview_sampling = as_config(SamplingConfig, preview_sampling)
        self.save_hyperparameters({"dit": asdict(dit), "lr": lr, "betas": betas, "weight_decay": weight_decay,
                                   "ema_decay": ema_decay, "cosine_weight": cosine_weight,
                                   "preview_sampling": asdict(preview_sampling),
                                   "preview_per_person": preview_per_person,
                                   "preview_classes": preview_classes or dit.num_classes})
        self.model = LightningDiT(dit)
        self.ema = make_ema(self.model)
        self.stats = stats
        self.preview_sampling = preview_sampling
        self.last_samples: torch.Tensor | None = None  # normalised latents, person-major (see identity_seeds)

    def configure_optimizers(self):
        return torch.optim.AdamW(self.model.parameters(), lr=self.hparams.lr, betas=self.hparams.betas,
                                 weight_decay=self.hparams.weight_decay)

    def _prepare(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        return self.stats.normalize(batch["latent"].float()), batch["label"].long()

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        x1, y = self._prepare(batch)
        loss, logs = flow_loss(self.model, x1, self.model.drop_labels(y), self.hparams.cosine_weight)
        # epoch means over every rank's batches (Lightning's default for a training step: the last batch's value)
        self.log("train_loss", loss, prog_bar=True, on_step=False, on_epoch=True, sync_dist=True)
        self.log_dict({f"train/{k}": v for k, v in logs.items()}, on_step=False, on_epoch=True, sync_dist=True)
        return loss

    def on_train_batch_end(self, outputs, batch, batch_idx: int) -> None:
        update_ema(self.ema, self.model, self.hparams.ema_decay, self.global_step)

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        x1, y = self._prepare(batch)
        g = torch.Generator(device=x1.device).manual_seed(1234 + batch_idx)  # same noise every epoch
        loss, _ = flow_loss(self.ema, x1, y, self.hparams.cosine_weight, generator=g)
        self.log("val_loss", loss, prog_bar=True, sync_dist=True)

    def on_validation_epoch_end(self) -> None:
        """The preview samples, shared out over the processes (one noise seed per sample: the same images
        whatever the split) and gathered on the first."""
        if self.trainer.sanity_checking:
            return
        labels, seeds = identity_seeds(self.hparams.preview_classes, self.hparams.preview_per_person)
        world, rank = self.trainer.world_size, self.trainer.global_rank
        chunk = -(-len(labels) // world)
        mine = slice(rank * chunk, (rank + 1) * chunk)
        shape = (self.model.config.in_channels, self.model.config.input_size, self.model.config.input_size)
        part = torch.zeros(chunk, *shape, device=self.device)  # padded: every process gathers the same shape
        if labels[mine]:
            part[:len(labels[mine])] = sample(self.ema, labels[mine], seeds[mine], self.preview_sampling,
                                              device=self.device)
        gathered = self.all_gather(part).reshape(-1, *shape) if world > 1 else part
        if self.trainer.is_global_zero:
            self.last_samples = gathered[:len(labels)].cpu()

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["latent_stats"] = self.stats.to_dict()

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self.stats = LatentStats.from_dict(checkpoint.get("latent_stats"), "Lightning checkpoint")


def export_dit(module: DiTModule, path, extra: dict | None = None) -> None:
    """A standalone generator checkpoint: config, EMA and raw weights, latent statistics."""
    storage.atomic_torch_save({"format": "mdaug-dit/1", "config": asdict(module.model.config),
                               "ema": module.ema.state_dict(), "model": module.model.state_dict(),
                               "latent_stats": module.stats.to_dict(), **(extra or {})}, path)


def load_dit(path, use_ema: bool = True) -> tuple[LightningDiT, LatentStats, dict]:
    """Load an exported generator (a local path or a storage URI), read once: the model, its latent statistics and
    the checkpoint's entries plus file_sha256 (of the bytes read). A checkpoint without latent statistics is
    refused."""
    data = storage.read_bytes(path)
    ckpt = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    if not isinstance(ckpt, dict) or ckpt.get("format") != "mdaug-dit/1":
        raise ValueError(f"{path} is not an mdaug DiT checkpoint (export one with export_dit)")
    stats = LatentStats.from_dict(ckpt.get("latent_stats"), str(path))
    cfg = DiTConfig(**ckpt["config"])
    model = LightningDiT(cfg)
    model.load_state_dict(ckpt["ema" if use_ema else "model"])
    return model.eval(), stats, ckpt | {"file_sha256": hashlib.sha256(data).hexdigest()}
