"""Ray Train overhead of the tiny DiT: images/s of the pipeline's path (Ray Train + Lightning, the data held in
memory and shuffled every epoch, validation and the per-epoch preview samples included) against a plain PyTorch
loop (the same model, batch, optimizer, EMA and threads, training steps only), in one run on the same data.

Target: training-step ratio ≥ 0.9; the whole-epoch ratio shows what validation and the identity gate's
preview samples cost on top."""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("RAY_AUTH_MODE", "disabled")

import lightning.pytorch as pl  # noqa: E402
import numpy as np  # noqa: E402
import ray  # noqa: E402
import torch  # noqa: E402

from mdaug.cpus import available_cpus  # noqa: E402
from mdaug.flow.latents import LatentStats  # noqa: E402
from mdaug.flow.sampler import SamplingConfig  # noqa: E402
from mdaug.flow.transport import flow_loss  # noqa: E402
from mdaug.models.dit import dit_config  # noqa: E402
from mdaug.models.ema import update_ema  # noqa: E402
from mdaug.ray_mlflow.config import DiTStage, TrainJobConfig  # noqa: E402
from mdaug.ray_mlflow.ray_train import fit_with_ray, lightning_fit  # noqa: E402
from mdaug.training.dit_module import DiTModule  # noqa: E402

PERSONS, SHAPE = 31, (4, 16, 16)


def module(dit: DiTStage, per_person: int) -> DiTModule:
    cfg = dit_config(dit.size, input_size=SHAPE[-1], in_channels=SHAPE[0], patch_size=dit.patch_size,
                     num_classes=PERSONS, class_dropout=dit.class_dropout)
    stats = LatentStats(torch.zeros(SHAPE[0]), torch.ones(SHAPE[0]), "bench", 1)
    return DiTModule(cfg, stats, lr=dit.lr, ema_decay=dit.ema_decay, preview_per_person=per_person,
                     preview_sampling=SamplingConfig(steps=dit.preview_steps, cfg_scale=dit.preview_cfg,
                                                     cfg_mode="two_pass"))


def plain_loop(dit: DiTStage, latents: torch.Tensor, labels: torch.Tensor, steps: int, threads: int) -> float:
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    m = module(dit, 1)
    opt = m.configure_optimizers()
    g = torch.Generator().manual_seed(0)
    t0 = 0.0
    for step in range(steps + 10):
        if step == 10:
            t0 = time.perf_counter()
        idx = torch.randint(0, len(latents), (dit.batch_size,), generator=g)
        loss, _ = flow_loss(m.model, latents[idx], m.model.drop_labels(labels[idx]))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        update_ema(m.ema, m.model, dit.ema_decay, step)
    return steps * dit.batch_size / (time.perf_counter() - t0)


class EpochTimer(pl.Callback):
    """Per epoch, written by rank 0: seconds of training steps, of validation (with the preview samples the
    identity gate scores) and of the whole epoch (with Ray's checkpoint report, which runs before this hook)."""

    def __init__(self, path: str) -> None:
        self.path, self.marks = path, {}

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self.marks = {"start": time.perf_counter()}

    def on_validation_start(self, trainer, pl_module) -> None:
        self.marks["val_start"] = time.perf_counter()

    def on_validation_end(self, trainer, pl_module) -> None:
        self.marks["val_end"] = time.perf_counter()

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if trainer.global_rank == 0:
            m, end = self.marks, time.perf_counter()
            with open(self.path, "a") as f:
                f.write(f"{m['val_start'] - m['start']} {m['val_end'] - m['val_start']} {end - m['start']}\n")


def timed_loop(config: dict) -> None:
    dit = DiTStage(**config["job"]["dit"])
    torch.manual_seed(0)
    lightning_fit(module(dit, dit.identity_per_person), config, [EpochTimer(config["timer"])])


def ray_path(dit: DiTStage, latents: np.ndarray, labels: np.ndarray, workers: int, cpus: float, epochs: int,
             steps_per_epoch: int, tmp: Path) -> tuple[float, float, float]:
    """(training img/s, whole-epoch img/s, validation's share of the epoch) of the pipeline's path."""
    rows = [{"latent": z, "label": int(y), "index": i} for i, (z, y) in enumerate(zip(latents, labels, strict=True))]
    data = ray.data.from_items(rows)
    timer = tmp / f"epochs_{workers}.txt"
    cfg = TrainJobConfig(stage="dit", out=str(tmp / f"w{workers}"), workers=workers, cpus_per_worker=cpus,
                         keep_checkpoints=1, dit=dit)
    fit_with_ray(cfg, timed_loop, {"epochs": epochs, "batch_size": dit.batch_size, "steps_per_epoch": steps_per_epoch,
                                   "timer": str(timer)}, {"train": data, "val": data.limit(PERSONS * 9)})
    epochs_s = np.array([[float(x) for x in line.split()] for line in timer.read_text().splitlines()])[1:]
    train_s, val_s, epoch_s = np.median(epochs_s, axis=0)  # the first epoch warms up
    images = steps_per_epoch * dit.batch_size * workers
    return images / train_s, images / epoch_s, val_s / epoch_s


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--steps-per-epoch", type=int, default=200, help="optimizer steps per epoch (configs/tiny.yaml's)")
    ap.add_argument("--epochs", type=int, default=3, help="epochs of the Ray path (the first is not timed)")
    ap.add_argument("--per-person", type=int, default=42, help="training latents per person")
    a = ap.parse_args()
    from mdaug.config import load_config

    tiny = load_config("tiny", section="train")
    dit = tiny.dit  # the pipeline's: batch per worker × workers images per optimizer step
    whole = replace(dit, batch_size=dit.batch_size * tiny.workers)  # the same step in one process
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(PERSONS), a.per_person)
    latents = rng.normal(size=(len(labels), *SHAPE)).astype(np.float32)
    threads = available_cpus()
    plain = plain_loop(whole, torch.from_numpy(latents), torch.from_numpy(labels), a.steps_per_epoch, threads)
    ray.init(num_cpus=threads + 2, include_dashboard=False, log_to_driver=False)
    with tempfile.TemporaryDirectory() as tmp:
        one = ray_path(whole, latents, labels, 1, float(threads), a.epochs, a.steps_per_epoch, Path(tmp))
        two = ray_path(dit, latents, labels, tiny.workers, threads / tiny.workers, a.epochs,
                       a.steps_per_epoch, Path(tmp))
    ray.shutdown()
    print(f"DiT-{dit.size}/{dit.patch_size}, {whole.batch_size} images per optimizer step, {len(labels)} latents "
          f"{SHAPE}, {threads} CPUs, {a.steps_per_epoch} steps per epoch; validation samples {dit.identity_per_person} "
          f"images per person ({dit.preview_steps} steps) for the identity gate")
    print(f"  plain PyTorch loop ({threads} threads, training steps): {plain:7.1f} img/s")
    for name, (train, epoch, val) in ((f"1 worker × {threads} threads", one),
                                      (f"{tiny.workers} DDP workers × {threads / tiny.workers:g} threads "
                                       f"(configs/tiny.yaml)", two)):
        print(f"  Ray Train, {name}: training steps {train:7.1f} img/s  ratio {train / plain:.2f} | "
              f"whole epoch {epoch:7.1f} img/s  ratio {epoch / plain:.2f} (validation {val:.0%} of it)")


if __name__ == "__main__":
    main()
