"""Person classifier training (Lightning), with optional classic spectrogram augmentation.

Training length is a number of optimizer steps, not epochs: arms of an evaluation that differ only in how
much data they add then get the same compute, so a gain cannot come from training longer."""

from __future__ import annotations

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, RandomSampler, TensorDataset

from mdaug.augment import AugmentConfig, augment
from mdaug.models.classifier import SpectrogramResNet


class ClassifierModule(pl.LightningModule):
    """Cross-entropy, AdamW with a one-cycle learning rate over the trainer's max_steps."""

    def __init__(self, in_channels: int, num_classes: int, lr: float = 4e-3, weight_decay: float = 1e-4,
                 augment_cfg: AugmentConfig | None = None, width: int = 32) -> None:
        super().__init__()
        self.net = SpectrogramResNet(in_channels, num_classes, width)
        self.lr, self.weight_decay, self.augment_cfg = lr, weight_decay, augment_cfg

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, self.lr, total_steps=self.trainer.max_steps, pct_start=0.15)
        return [opt], [{"scheduler": sched, "interval": "step"}]

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        x, y = batch
        if self.augment_cfg is not None:
            x = augment(x, self.augment_cfg)
        loss = F.cross_entropy(self.net(x), y)
        self.log("train_loss", loss)
        return loss


def train_classifier(images: torch.Tensor, labels: torch.Tensor, num_classes: int, steps: int = 300,
                     batch_size: int = 32, augment_cfg: AugmentConfig | None = None, seed: int = 0,
                     lr: float = 4e-3, width: int = 32) -> SpectrogramResNet:
    """Train for exactly `steps` optimizer steps on batches drawn with replacement; returns the net in eval mode."""
    if steps < 1:
        raise ValueError(f"classifier steps must be ≥ 1, got {steps}")
    pl.seed_everything(seed, workers=True, verbose=False)
    module = ClassifierModule(images.shape[1], num_classes, lr=lr, augment_cfg=augment_cfg, width=width)
    sampler = RandomSampler(range(len(images)), replacement=True, num_samples=steps * batch_size,
                            generator=torch.Generator().manual_seed(seed))
    loader = DataLoader(TensorDataset(images, labels), batch_size=batch_size, sampler=sampler)
    trainer = pl.Trainer(max_steps=steps, max_epochs=1, accelerator="auto", devices=1, logger=False,
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(module, loader)
    return module.net.eval()
