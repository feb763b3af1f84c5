"""Every training stage sees a fresh random order each epoch on each worker, reproducible from the run seed: a
real 2-worker Ray Train run records the labels each worker's batches hold (data sorted by person, as a
manifest is); the order equals the one the seed gives in this process, so nothing else (Ray's scheduling, the
data's arrival order) enters it."""

from __future__ import annotations

import json
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import torch

from mdaug.ray_mlflow.config import TrainJobConfig
from mdaug.ray_mlflow.ray_train import fit_with_ray, lightning_fit
from mdaug.training.batches import shuffled_loader

PERSONS, PER_PERSON, BATCH, EPOCHS = 31, 8, 64, 2


class Recorder(pl.LightningModule):
    """Trains a scalar on nothing; writes the labels of every batch it sees to out/rank{r}.json."""

    def __init__(self, out: str) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))
        self.out, self.seen = Path(out), []

    def training_step(self, batch, batch_idx):
        self.seen.append((self.current_epoch, batch["label"].tolist()))
        return (self.w - batch["latent"].mean()) ** 2

    def validation_step(self, batch, batch_idx):
        self.log("val_loss", (self.w ** 2).sum(), sync_dist=True)

    def on_train_end(self) -> None:
        (self.out / f"rank{self.global_rank}.json").write_text(json.dumps(self.seen))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def record_loop(config: dict) -> None:
    lightning_fit(Recorder(config["record"]), config, [])


def sorted_by_person():
    import ray

    n = PERSONS * PER_PERSON
    return ray.data.from_items([{"latent": np.full((2, 2), i % 7, dtype=np.float32), "label": i // PER_PERSON,
                                 "index": i} for i in range(n)])  # person-blocked, like a manifest


def run(tmp: Path, seed: int) -> dict[int, list]:
    import sys

    from ray import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import this test module
    tmp.mkdir(parents=True)
    cfg = TrainJobConfig(stage="dit", out=str(tmp), workers=2, seed=seed, keep_checkpoints=1)
    fit_with_ray(cfg, record_loop, {"epochs": EPOCHS, "batch_size": BATCH, "record": str(tmp)},
                 {"train": sorted_by_person(), "val": sorted_by_person()}, {"data": "sorted_by_person"})
    return {r: json.loads((tmp / f"rank{r}.json").read_text()) for r in (0, 1)}


def order_from_seed(seed: int, rank: int, world: int = 2) -> list:
    """What a worker must see, computed here without Ray: (epoch, labels) per batch."""
    loader = shuffled_loader({"label": torch.arange(PERSONS * PER_PERSON) // PER_PERSON}, BATCH, 1, seed, rank, world)
    order = []
    for epoch in range(EPOCHS):
        loader.batch_sampler.sampler.set_epoch(epoch)
        order += [[epoch, b["label"].tolist()] for b in loader]
    return order


def test_batches_mix_persons_change_every_epoch_and_repeat_with_the_seed(ray_local, tmp_path):
    seed = 3
    seen = run(tmp_path / "a", seed)
    for rank, batches in seen.items():
        epochs = {e: [lab for ep, lab in batches if ep == e] for e in range(EPOCHS)}
        for e, batch in epochs.items():  # a person-blocked batch holds 8 persons
            assert len(batch[0]) == BATCH and len(set(batch[0])) >= 10, (rank, e, sorted(set(batch[0])))
        assert epochs[0] != epochs[1], "epochs must differ in order"
        assert all(len(b) == 1 for b in epochs.values())  # 248 rows, 2 workers × 64 per step: one step an epoch
        assert batches == order_from_seed(seed, rank), "the order must follow from the seed alone"
    assert seen[0] != seen[1]  # the workers take different rows
    assert order_from_seed(seed + 1, 0) != order_from_seed(seed, 0)
