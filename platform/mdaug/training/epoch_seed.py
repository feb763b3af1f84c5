"""Every epoch's random numbers from (seed, epoch, rank) alone, so a run resumed from an epoch's checkpoint draws
what an uninterrupted run draws: noise, timesteps, dropout, augmentations, the discriminator's samples."""

from __future__ import annotations

import random

import lightning.pytorch as pl
import numpy as np
import torch

from mdaug.console import say
from mdaug.seeds import hash_seed


class EpochSeed(pl.Callback):
    """Seeds torch (every device), numpy and random at the start of each training epoch; on the first epoch of a
    resumed fit it says where training picks up."""

    def __init__(self, seed: int, label: str = "") -> None:
        self.seed, self.label, self.first = seed, label, True

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        epoch = trainer.current_epoch
        if self.first and epoch > 0 and trainer.global_rank == 0:
            say(f"[{self.label}] resumed from its checkpoint after epoch {epoch} of {trainer.max_epochs}: training "
                f"epochs {epoch + 1}–{trainer.max_epochs}")
        self.first = False
        seed = hash_seed(self.seed, epoch, trainer.global_rank)
        torch.manual_seed(seed)
        np.random.seed(seed % 2**32)
        random.seed(seed)
