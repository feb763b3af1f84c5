"""Person classifier training (Lightning), with optional classic spectrogram augmentation."""

from __future__ import annotations

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from mdaug.augment import AugmentConfig, augment
from mdaug.models.classifier import SpectrogramResNet


class ClassifierModule(pl.LightningModule):
    def __init__(self, in_channels: int, num_classes: int, lr: float = 2e-3, weight_decay: float = 1e-4,
                 augment_cfg: AugmentConfig | None = None, width: int = 32) -> None:
        super().__init__()
        self.net = SpectrogramResNet(in_channels, num_classes, width)
        self.lr, self.weight_decay, self.augment_cfg = lr, weight_decay, augment_cfg

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, self.trainer.max_epochs))
        return [opt], [sched]

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        x, y = batch
        if self.augment_cfg is not None:
            x = augment(x, self.augment_cfg)
        loss = F.cross_entropy(self.net(x), y)
        self.log("train_loss", loss, prog_bar=True)
        return loss

    def validation_step(self, batch, batch_idx: int) -> None:
        x, y = batch
        logits = self.net(x)
        self.log("val_loss", F.cross_entropy(logits, y))
        self.log("val_acc", (logits.argmax(1) == y).float().mean())


def train_classifier(images: torch.Tensor, labels: torch.Tensor, num_classes: int, epochs: int = 15,
                     batch_size: int = 64, augment_cfg: AugmentConfig | None = None, seed: int = 0,
                     lr: float = 2e-3, width: int = 32) -> SpectrogramResNet:
    """Train on in-memory tensors with a plain Lightning Trainer; returns the network in eval mode."""
    pl.seed_everything(seed, workers=True, verbose=False)
    module = ClassifierModule(images.shape[1], num_classes, lr=lr, augment_cfg=augment_cfg, width=width)
    loader = DataLoader(TensorDataset(images, labels), batch_size=batch_size, shuffle=True,
                        generator=torch.Generator().manual_seed(seed))
    trainer = pl.Trainer(max_epochs=epochs, accelerator="auto", devices=1, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, deterministic=False)
    trainer.fit(module, loader)
    return module.net.eval()
