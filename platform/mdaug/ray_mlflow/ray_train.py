"""Ray Train + Lightning DDP: one TorchTrainer per stage, checkpoints kept by validation loss,
restarts from the latest checkpoint after a worker failure, MLflow logging from rank 0; a job killed with its
driver resumes from its last epoch when run again with the same settings and inputs (`RunMarker`)."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
import warnings
from contextlib import nullcontext, suppress
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import ray
import ray.train
import torch
from ray.train.lightning import RayDDPStrategy, RayLightningEnvironment, RayTrainReportCallback, prepare_trainer
from ray.train.torch import TorchTrainer

from mdaug.ray_mlflow.config import TrainJobConfig
from mdaug.ray_mlflow.ray_session import log_level, quiet_library_noise
from mdaug.ray_mlflow.tracking import worker_system_metrics
from mdaug.storage import delete_dir, exists, join, write_text
from mdaug.training.batches import ordered_loader, shuffled_loader
from mdaug.training.epoch_seed import EpochSeed

# a job's settings that do not change what it trains: where it reads and writes, how it is run and restarted
NOT_RESULTS = ("stage", "data", "out", "tracking_dir", "storage", "experiment", "resume", "resource_wait_s",
               "max_failures", "keep_checkpoints")


def shard_tensors(name: str) -> dict[str, torch.Tensor]:
    """This worker's copy of a dataset, in memory, in a canonical order (by its `index` column): the data sets
    are small (tiny latents ≈ 5 MB) and every epoch then costs no Ray Data work."""
    parts: dict[str, list[np.ndarray]] = {}
    for batch in ray.train.get_dataset_shard(name).iter_batches(batch_size=4096, batch_format="numpy"):
        for k, v in batch.items():
            parts.setdefault(k, []).append(v)
    cols = {k: np.concatenate(v) for k, v in parts.items()}
    order = np.argsort(cols.pop("index"), kind="stable")
    return {k: torch.from_numpy(np.ascontiguousarray(v[order])) for k, v in cols.items() if v.dtype != object}


def lightning_fit(module: pl.LightningModule, config: dict[str, Any], callbacks: list[pl.Callback]) -> None:
    """Inside a Train worker: fit `module` on the datasets, resuming from Ray's latest checkpoint.

    Every worker holds the whole data set and takes its share of a fresh permutation each epoch (seeded by
    the job's seed, the epoch and the pass): batches mix persons, epochs differ, the same seed repeats."""
    cfg = config["job"]
    gpu = cfg["gpus_per_worker"] > 0
    torch.set_num_threads(max(1, int(cfg["cpus_per_worker"])))
    warnings.filterwarnings("ignore", message="Grad strides do not match bucket view strides")  # 1×1 convs; harmless
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)  # no per-worker accelerator banners
    logging.getLogger().setLevel(config.get("log_level", "INFO"))  # Ray Train's per-report lines (root's children)
    quiet_library_noise(config.get("log_level", "INFO") == "INFO")
    if gpu and hasattr(module, "model"):
        module.model.compile()  # in place: state_dict keys unchanged
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    batch = config["batch_size"]
    train_data = shard_tensors("train")
    n = len(next(iter(train_data.values())))
    steps = config.get("steps_per_epoch") or max(1, n // (batch * world))
    train = shuffled_loader(train_data, batch, steps, cfg["seed"], rank, world)
    val = ordered_loader(shard_tensors("val"), batch, rank, world)
    report = RayTrainReportCallback()
    trainer = pl.Trainer(
        max_epochs=config["epochs"], accelerator="gpu" if gpu else "cpu", devices="auto",
        strategy=RayDDPStrategy(find_unused_parameters=config.get("find_unused", False)),
        plugins=[RayLightningEnvironment()], precision="bf16-mixed" if gpu else "32-true",
        callbacks=[EpochSeed(cfg["seed"], config.get("label", cfg["stage"])), report, *callbacks],
        enable_checkpointing=False, logger=False, log_every_n_steps=max(1, steps // 10),  # EpochLogger's step curve
        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
        use_distributed_sampler=False,
    )
    trainer = prepare_trainer(trainer)
    checkpoint = ray.train.get_checkpoint()
    tracked = "run_id" in config  # a job's stage: this worker's system metrics go to its run
    with worker_system_metrics(config["tracking_uri"], config["run_id"], f"rank{rank}") if tracked else nullcontext():
        try:
            if checkpoint is None:
                trainer.fit(module, train_dataloaders=train, val_dataloaders=val)
                return
            with checkpoint.as_directory() as ckpt_dir:
                trainer.fit(module, train_dataloaders=train, val_dataloaders=val,
                            ckpt_path=str(Path(ckpt_dir) / RayTrainReportCallback.CHECKPOINT_NAME))
        finally:  # the callback's folder in the temp dir, which it empties after each report but leaves behind
            with suppress(OSError):
                os.rmdir(report.tmpdir_prefix)  # only when empty


class RunMarker:
    """OUT/<stage folder>/ray_run_name: the Ray Train run a job started, and the key of what it trains (its settings
    and inputs). Written when the run starts, removed when its result is exported and its Ray folder deleted: a
    marker that exists belongs to a run that did not finish."""

    def __init__(self, cfg: TrainJobConfig) -> None:
        self.cfg, self.path = cfg, cfg.run_name_file

    def read(self) -> dict[str, str]:
        if not self.path.is_file():
            return {}
        text = self.path.read_text().strip()
        return json.loads(text) if text.startswith("{") else {"name": text, "key": ""}

    def name(self, key: str) -> str:
        """--resume: the stage's last run; an unfinished run of the same key: that run, whose latest checkpoint
        Ray Train restores; otherwise a new name."""
        earlier = self.read()
        if self.cfg.resume:  # the pre-flight (check_resume) made sure there is one
            return earlier["name"]
        if earlier and earlier["key"] == key and exists(self.run_dir(earlier["name"])):
            print(f"[{self.cfg.stage}] resuming Ray Train run {earlier['name']} (killed before it finished; same "
                  "settings and inputs) from its last checkpoint", flush=True)
            return earlier["name"]
        if earlier:  # an unfinished run of other settings or inputs: it cannot be resumed, its checkpoints go
            delete_dir(self.run_dir(earlier["name"]))
        name = f"{self.cfg.stage}-{time.strftime('%Y%m%d-%H%M%S')}"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_text(self.path, json.dumps({"name": name, "key": key}))
        return name

    def run_dir(self, name: str) -> str:
        return join(self.cfg.artifact("ray"), name)

    def finish(self) -> None:
        """The result is exported: the run's checkpoints go, and with them the marker."""
        if earlier := self.read():
            delete_dir(self.run_dir(earlier["name"]))
        self.path.unlink(missing_ok=True)


def resume_key(cfg: TrainJobConfig, inputs: dict[str, Any]) -> str:
    """sha256 (16 hex) of what a job trains: its settings but those in NOT_RESULTS, and its inputs' hashes."""
    settings = {k: v for k, v in cfg.to_dict().items() if k not in NOT_RESULTS}
    return hashlib.sha256(json.dumps([settings, inputs], sort_keys=True, default=str).encode()).hexdigest()[:16]


def fit_with_ray(cfg: TrainJobConfig, loop, loop_config: dict[str, Any], datasets: dict[str, ray.data.Dataset],
                 inputs: dict[str, Any]):
    """Run the stage's TorchTrainer (resuming an unfinished run of the same settings and `inputs`, the hashes of
    what it reads); returns Ray's Result (raises if training failed). Call `RunMarker(cfg).finish()` once the
    result is exported."""
    # read once here, not once per worker: every worker then copies finished blocks from the object store
    datasets = {name: ds.materialize() for name, ds in datasets.items()}
    for ds in datasets.values():  # quiet copies: no progress bars per worker in the job's log
        ds.context.enable_progress_bars = ds.context.print_on_execution_start = False
    resources = {"CPU": cfg.cpus_per_worker} | ({"GPU": cfg.gpus_per_worker} if cfg.gpus_per_worker else {})
    trainer = TorchTrainer(
        loop,
        train_loop_config={"job": cfg.to_dict(), "log_level": log_level(), **loop_config},
        scaling_config=ray.train.ScalingConfig(num_workers=cfg.workers, use_gpu=cfg.gpus_per_worker > 0,
                                               resources_per_worker=resources),
        run_config=ray.train.RunConfig(
            name=RunMarker(cfg).name(resume_key(cfg, inputs)), storage_path=cfg.artifact("ray"),
            logging_config=ray.train.LoggingConfig(log_level=log_level()),  # reports, checkpoints: MDAUG_VERBOSE=1
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=cfg.keep_checkpoints,
                                                         checkpoint_score_attribute="val_loss",
                                                         checkpoint_score_order="min"),
            failure_config=ray.train.FailureConfig(max_failures=cfg.max_failures),
        ),
        datasets=datasets,
        dataset_config=ray.train.DataConfig(datasets_to_split=[]),  # every worker reads all; see lightning_fit
    )
    return trainer.fit()


def best_lightning_checkpoint(result) -> Path:
    """The kept checkpoint with the lowest val_loss (falls back to the latest)."""
    best = min(result.best_checkpoints, key=lambda cm: cm[1].get("val_loss", float("inf")), default=None)
    ckpt = best[0] if best else result.checkpoint
    if ckpt is None:
        raise RuntimeError("training reported no checkpoint")
    local = Path(ckpt.path) if ckpt.filesystem.type_name == "local" else Path(ckpt.to_directory())  # s3://…
    return local / RayTrainReportCallback.CHECKPOINT_NAME
