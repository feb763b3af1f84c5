"""A Lightning fit resumed from a checkpoint saved at an epoch's end (where Ray Train's report callback saves one)
draws the same batches and random numbers as an uninterrupted fit, and ends with bit-equal weights."""

from __future__ import annotations

import logging

import lightning.pytorch as pl
import torch

from mdaug.training.batches import shuffled_loader
from mdaug.training.epoch_seed import EpochSeed

logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)


class Noisy(pl.LightningModule):
    """A regression whose loss draws noise from torch's global generator, as diffusion and dropout do."""

    def __init__(self) -> None:
        super().__init__()
        self.lin, self.seen = torch.nn.Linear(4, 1), []

    def training_step(self, batch: dict[str, torch.Tensor], i: int) -> torch.Tensor:
        self.seen.append((self.current_epoch, batch["index"].tolist()))
        noise = torch.randn(len(batch["x"]), 1)
        return ((self.lin(batch["x"]) - batch["y"] + 0.1 * noise) ** 2).mean()

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=0.01)


class SaveAt(pl.Callback):
    def __init__(self, epoch: int, path: str) -> None:
        self.epoch, self.path = epoch, path

    def on_train_epoch_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        if trainer.current_epoch == self.epoch:
            trainer.save_checkpoint(self.path)


def _data() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {"x": torch.randn(40, 4, generator=g), "y": torch.randn(40, 1, generator=g), "index": torch.arange(40)}


def _fit(data: dict[str, torch.Tensor], callbacks: list[pl.Callback], ckpt: str | None = None,
         seeded: bool = True) -> Noisy:
    torch.manual_seed(1)
    module = Noisy()
    trainer = pl.Trainer(max_epochs=5, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, callbacks=[EpochSeed(3, "test")] * seeded + callbacks)
    trainer.fit(module, shuffled_loader(data, 4, 3, seed=5), ckpt_path=ckpt)
    return module


def test_a_fit_resumed_at_an_epoch_end_ends_bit_equal_to_an_uninterrupted_one(tmp_path, capsys):
    data = _data()
    ckpt = str(tmp_path / "epoch1.ckpt")
    whole = _fit(data, [SaveAt(1, ckpt)])
    capsys.readouterr()
    resumed = _fit(data, [], ckpt)
    assert "[test] resumed from its checkpoint after epoch 2 of 5" in capsys.readouterr().out
    assert resumed.seen == [s for s in whole.seen if s[0] >= 2]  # same batches, epochs 2-4 only
    assert {s[0] for s in whole.seen} == {0, 1, 2, 3, 4} and whole.seen[0][1] != whole.seen[3][1]  # epochs differ
    for name, value in whole.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[name]), name


def test_an_unseeded_fit_differs(tmp_path):
    """The test above could pass vacuously if the noise did nothing: without EpochSeed, a fit resumed at an epoch
    end does not repeat the uninterrupted fit's random numbers, and its weights differ."""
    data = _data()
    ckpt = str(tmp_path / "epoch1.ckpt")

    whole, resumed = _fit(data, [SaveAt(1, ckpt)], seeded=False), _fit(data, [], ckpt, seeded=False)
    assert not torch.equal(whole.lin.weight, resumed.lin.weight)
