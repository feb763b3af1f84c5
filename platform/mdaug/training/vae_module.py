"""VA-VAE training: generator (autoencoder, log-variance, VF projection) and PatchGAN discriminator,
optimised alternately with manual optimisation; the generator's learning rate constant or one-cycle."""

from __future__ import annotations

from dataclasses import asdict

import lightning.pytorch as pl
import torch

from mdaug.models.foundation import DinoV2Encoder
from mdaug.models.vavae import AutoencoderKL, VAEConfig
from mdaug.models.vavae_losses import IdentityLoss, PerceptualLoss, VAELossConfig, VAVAELoss

SCHEDULES = ("constant", "onecycle")  # the generator's learning-rate schedule


def as_config(cls, value):
    """A config dataclass from itself or from its dict form (as hyper-parameters come back from a checkpoint)."""
    if isinstance(value, cls):
        return value
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in value.items()})


class VAEModule(pl.LightningModule):
    """The frozen foundation encoder is not part of the module's state: checkpoints hold only what trains.

    schedule: "constant" (the VA-VAE release's) or "onecycle" (warm-up over the first 10 % of the trainer's steps
    to `lr`, then cosine annealing): a short CPU run of a few thousand steps gets much further with it."""

    def __init__(self, vae: VAEConfig | dict, loss: VAELossConfig | dict = VAELossConfig(), lr: float = 1e-4,
                 betas: tuple[float, float] = (0.5, 0.9), foundation: DinoV2Encoder | None = None,
                 perceptual: PerceptualLoss | None = None, vf_dim: int | None = None,
                 identity: IdentityLoss | None = None, schedule: str = "constant") -> None:
        if schedule not in SCHEDULES:
            raise ValueError(f"unknown learning-rate schedule {schedule!r}; use one of {', '.join(SCHEDULES)}")
        super().__init__()
        vae, loss = as_config(VAEConfig, vae), as_config(VAELossConfig, loss)
        vf_dim = foundation.dim if foundation is not None else vf_dim
        self.save_hyperparameters({"vae": asdict(vae), "loss": asdict(loss), "lr": lr, "betas": tuple(betas),
                                   "vf_dim": vf_dim, "schedule": schedule})
        self.automatic_optimization = False
        self.vae = AutoencoderKL(vae)
        object.__setattr__(self, "foundation", foundation)  # not a submodule: frozen, never checkpointed
        self.vf_encoder = foundation.name if foundation is not None else "none"
        self.loss = VAVAELoss(loss, vae.out_ch, vae.z_channels, vf_dim, perceptual, identity)
        self.lr, self.betas = lr, betas
        self.last_reconstruction: tuple[torch.Tensor, torch.Tensor] | None = None

    def on_fit_start(self) -> None:
        for frozen in (self.foundation, self.loss.identity):
            if frozen is not None:
                frozen.to(self.device)

    def configure_optimizers(self):
        gen = [*self.vae.parameters(), self.loss.logvar]
        if self.loss.vf_proj is not None:
            gen += list(self.loss.vf_proj.parameters())
        opt_g = torch.optim.Adam(gen, lr=self.lr, betas=self.betas)
        opt_d = torch.optim.Adam(self.loss.discriminator.parameters(), lr=self.lr, betas=self.betas)
        if self.hparams.schedule == "constant":
            return [opt_g, opt_d]
        steps = max(1, int(self.trainer.estimated_stepping_batches))  # generator steps (one per batch)
        return [opt_g, opt_d], [torch.optim.lr_scheduler.OneCycleLR(opt_g, self.lr, total_steps=steps,
                                                                    pct_start=0.1)]

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        """One generator (and, after disc_start, discriminator) update; returns this batch's L1 (detached), the
        step-level curve's value."""
        opt_g, opt_d = self.optimizers()
        x = batch["image"]
        post = self.vae.encode(x)
        z = post.sample()
        rec = self.vae.decode(z)
        feats = self.foundation(x) if self.foundation is not None else None
        step = self.global_step // 2  # Lightning counts both optimizers' steps
        loss, logs = self.loss.generator_loss(x, rec, post.kl(), z, feats, step,
                                              self.vae.decoder.conv_out.weight, self.vae.encoder.conv_out.weight)
        opt_g.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        opt_g.step()
        if self.hparams.schedule != "constant" and step + 1 < self.lr_schedulers().total_steps:
            self.lr_schedulers().step()
        if step >= self.loss.cfg.disc_start:
            d_loss, d_logs = self.loss.discriminator_loss(x, rec)
            opt_d.zero_grad(set_to_none=True)
            self.manual_backward(d_loss)
            opt_d.step()
            logs |= d_logs
        else:
            opt_d.step()  # keeps Lightning's step counter in lockstep; no gradients, no update
        logs["lr"] = torch.tensor(opt_g.param_groups[0]["lr"])
        # epoch means over every rank's batches (Lightning's default for a training step: the last batch's value)
        self.log_dict({f"train/{k}": v for k, v in logs.items()}, on_step=False, on_epoch=True, sync_dist=True)
        self.log("train_loss", logs["l1"], prog_bar=True, on_step=False, on_epoch=True, sync_dist=True)
        return logs["l1"].detach()

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        x = batch["image"]
        rec = self.vae.decode(self.vae.encode(x).mode())
        self.log("val_loss", (x - rec).abs().mean(), prog_bar=True, sync_dist=True)
        if batch_idx == 0:
            self.last_reconstruction = (x[:8].detach().cpu(), rec[:8].detach().float().cpu())
