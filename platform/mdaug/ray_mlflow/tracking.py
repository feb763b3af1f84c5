"""MLflow: one run per job (never left RUNNING), provenance tags, and a rank-0 epoch logger for Lightning."""

from __future__ import annotations

import logging
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from mlflow.tracking import MlflowClient
from mlflow.tracking.context.registry import resolve_tags
from PIL import Image

from mdaug.console import say
from mdaug.imaging import labelled_grid, tensor_image
from mdaug.secrets import redact, redact_text

REPO = Path(__file__).resolve().parents[3]
EXPERIMENT_KIND, MODEL_TRAINING = "mlflow.experimentKind", "custom_model_development"  # MLflow UI's view choice
DESCRIPTION = "mlflow.note.content"  # a run's description in the MLflow UI


def folder_store() -> bool:
    """True when runs go to the output folder's own sqlite store (MLFLOW_TRACKING_URI unset), not a server."""
    return not os.environ.get("MLFLOW_TRACKING_URI")


def tracking_uri(out: Path) -> str:
    """MLFLOW_TRACKING_URI if set, else a sqlite store in the output folder (MLflow 3.17 refuses file stores)."""
    if not folder_store():
        return os.environ["MLFLOW_TRACKING_URI"]
    out.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{(out / 'mlflow.db').resolve()}"


def shown_tracking_uri(out: Path) -> str:
    """tracking_uri for printing and logging: a server URI with its credentials (user:password@, ?token=) as ***."""
    return redact(tracking_uri(out))


def ui_hint(out: Path, experiment: str) -> str:
    """How to open experiment id `experiment` in the MLflow UI's Model training view: MLflow 3.17 shows its GenAI
    view unless the link asks (?workflowType=machine_learning) or the browser's toggle last chose the other."""
    uri, page = shown_tracking_uri(out), f"#/experiments/{experiment}?workflowType=machine_learning"
    if uri.startswith(("http://", "https://")):
        return f"open {uri.rstrip('/')}/{page}"
    return f"mlflow ui --backend-store-uri {uri} --host 127.0.0.1 --workers 1, then open http://127.0.0.1:5000/{page}"


def experiment_id(client: MlflowClient, name: str, out: Path) -> str:
    """The experiment's id, created if missing: artifacts beside the folder's own sqlite store, else wherever the
    tracking server puts them (its --artifacts-destination, e.g. S3). Tagged a model-training experiment; the UI's
    view (GenAI or Model training) is the browser's choice, which `ui_hint`'s link sets."""
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        if EXPERIMENT_KIND not in exp.tags:
            client.set_experiment_tag(exp.experiment_id, EXPERIMENT_KIND, MODEL_TRAINING)
        return exp.experiment_id
    local = (out / "mlartifacts").resolve().as_uri() if folder_store() else None
    return client.create_experiment(name, artifact_location=local, tags={EXPERIMENT_KIND: MODEL_TRAINING})


def git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


@contextmanager
def mlflow_run(out: Path, experiment: str, run_name: str, tags: dict[str, str],
               parent_run_id: str | None = None) -> Iterator[tuple[MlflowClient, str]]:
    """Start a run; end it FINISHED, or FAILED with the error as a tag, or KILLED on interrupt."""
    os.environ.pop("MLFLOW_EXPERIMENT_ID", None)  # set by mlflow.set_experiment; it would win over `experiment`
    client = MlflowClient(tracking_uri(out))
    exp = experiment_id(client, experiment, out)
    # MLflow's own context tags too (mlflow.user, mlflow.source.name/type, git): the UI's "Created by" and "Source"
    all_tags = resolve_tags({"mlflow.runName": run_name, "git_commit": git_commit(), **tags})
    if parent_run_id:
        all_tags["mlflow.parentRunId"] = parent_run_id
    run = client.create_run(exp, tags=all_tags, run_name=run_name)
    with run_outcome(client, run.info.run_id):
        yield client, run.info.run_id


@contextmanager
def run_outcome(client: MlflowClient, run_id: str) -> Iterator[None]:
    """End the run FINISHED, or FAILED with the error as a tag, or KILLED on interrupt."""
    try:
        yield
    except KeyboardInterrupt:
        client.set_tag(run_id, "error", "interrupted")
        client.set_terminated(run_id, "KILLED")
        raise
    except BaseException as err:
        client.set_tag(run_id, "error", redact_text(f"{type(err).__name__}: {err}")[:5000])
        client.set_terminated(run_id, "FAILED")
        raise
    else:
        client.set_terminated(run_id, "FINISHED")


def log_params(client: MlflowClient, run_id: str, params: dict) -> None:
    from mlflow.entities import Param

    items = [Param(k, str(v)[:6000]) for k, v in params.items()]
    for i in range(0, len(items), 100):
        client.log_batch(run_id, params=items[i:i + 100])


class EpochLogger(pl.Callback):
    """Rank 0 logs per-epoch metrics, throughput (img/s over all workers), epoch time, and what `report`
    (module → (metrics, grid image or None)) measures, e.g. identity ratios and a sample grid; and prints one
    progress line per epoch (`epoch_line`). Step-level curve: `train_loss_step`, rank 0's batch loss every
    `trainer.log_every_n_steps` batches, its step the batch number since the fit began (logged with the epoch's).

    Measures when validation ends, before Ray's report callback saves the epoch's checkpoint, which holds the
    measurement (`checkpoint_measurement`: a run killed after its last checkpoint still exports it); logs after it
    (placed after Ray's callback), so an epoch is logged only once its checkpoint is written (Ray Train's controller
    registers it, for a resumed run to restore, when it next polls the workers)."""

    def __init__(self, uri: str, run_id: str, report: Callable | None = None, label: str = "train",
                 grid_key: str = "samples") -> None:
        self.uri, self.run_id, self.report, self.label, self.grid_key = uri, run_id, report, label, grid_key
        self.t0, self.images, self.seconds, self.steps = 0.0, 0, [], []
        self.measured: dict[str, float] = {}
        self.grid = None

    def state_dict(self) -> dict[str, Any]:
        return {"measured": dict(self.measured)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.measured = dict(state_dict.get("measured", {}))

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self.t0, self.images, self.measured, self.grid = time.perf_counter(), 0, {}, None

    def on_validation_end(self, trainer, pl_module) -> None:
        if trainer.global_rank == 0 and not trainer.sanity_checking and self.report is not None:
            self.measured, self.grid = self.report(pl_module)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.images += len(next(iter(batch.values())))
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if trainer.global_rank == 0 and loss is not None and (batch_idx + 1) % trainer.log_every_n_steps == 0:
            step = trainer.current_epoch * trainer.num_training_batches + batch_idx + 1
            self.steps.append((step, float(loss)))

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if trainer.global_rank != 0:
            return
        seconds = time.perf_counter() - self.t0
        epoch = trainer.current_epoch
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}
        metrics |= {"epoch_time_s": seconds, "throughput_img_s": self.images * trainer.world_size / seconds,
                    "global_step": float(trainer.global_step)}
        metrics |= self.measured
        self.seconds.append(seconds)
        say(epoch_line(self.label, epoch, trainer.max_epochs, metrics, self.seconds))
        client = MlflowClient(self.uri)
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        client.log_batch(self.run_id, metrics=[Metric(k, v, now, epoch) for k, v in metrics.items()]
                         + [Metric("train_loss_step", v, now, step) for step, v in self.steps])
        self.steps.clear()
        if self.grid is not None:  # the UI's image panel, with the epoch on its step slider
            client.log_image(self.run_id, self.grid, key=self.grid_key, step=epoch, synchronous=True)


def epoch_line(label: str, epoch: int, epochs: int, metrics: dict[str, float], seconds: list[float]) -> str:
    """`[dit k=5 replicate 0] epoch 3/40 · train loss 0.8123 · val loss 0.8311 · identity 0.72 · 410 img/s ·
    ETA 2m10s`: the epoch means, the identity ratio where this epoch measured one, the time left at the mean epoch
    time of this fit so far."""
    parts = [f"[{label}] epoch {epoch + 1}/{epochs}"]
    parts += [f"{name.replace('_', ' ')} {metrics[name]:.4f}" for name in ("train_loss", "val_loss") if name in metrics]
    for name in ("identity_ratio", "recon_identity_ratio"):
        if name in metrics:
            parts.append(f"identity {metrics[name]:.2f}")
    parts.append(f"{metrics.get('throughput_img_s', 0):.0f} img/s")
    left = round(sum(seconds) / len(seconds) * (epochs - epoch - 1))
    parts.append(f"ETA {left // 60}m{left % 60:02d}s" if left >= 60 else f"ETA {left}s")
    return " · ".join(parts)


def system_metrics_interval(default_s: float = 5) -> float:
    """Seconds between system-metric samples: MLflow's own MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL where it is set."""
    return float(os.environ.get("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL") or default_s)


@contextmanager
def driver_system_metrics(uri: str, run_id: str, interval_s: float = 5) -> Iterator[None]:
    """The job driver's CPU, memory, disk, network (and GPU) as `system/*` metrics of `run_id` while the block runs.
    MLflow's SystemMetricsMonitor, not the fluent API: the driver logs to several runs by id and never holds an
    active run."""
    from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

    logging.getLogger("mlflow.system_metrics").setLevel(logging.WARNING)  # no start/stop lines per stage
    monitor = SystemMetricsMonitor(run_id, sampling_interval=system_metrics_interval(interval_s), tracking_uri=uri)
    monitor.start()
    try:
        yield
    finally:
        monitor.finish()


@contextmanager
def worker_system_metrics(uri: str, run_id: str, node_id: str, interval_s: float = 5) -> Iterator[None]:
    """This process's CPU, memory, disk, network (and GPU, with the `gpu` extra's nvidia-ml-py) every `interval_s`
    (or MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL) as `system/<node_id>/*` metrics of the job's run, through MLflow's
    fluent API (`start_run(log_system_metrics=True)`, `set_system_metrics_node_id`). For a Ray Train worker's own
    process: the run is left RUNNING (the driver ends it)."""
    import mlflow

    logging.getLogger("mlflow.system_metrics").setLevel(logging.WARNING)  # no start/stop lines per worker
    mlflow.set_tracking_uri(uri)
    mlflow.set_system_metrics_sampling_interval(system_metrics_interval(interval_s))
    mlflow.set_system_metrics_node_id(node_id)
    mlflow.start_run(run_id=run_id, log_system_metrics=True)
    try:
        yield
    finally:
        mlflow.end_run(status="RUNNING")  # stops the monitor; the job's driver sets the run's outcome


def checkpoint_measurement(checkpoint: dict[str, Any], names: tuple[str, ...]) -> dict[str, float]:
    """What EpochLogger measured at a Lightning checkpoint's epoch (empty where it measured none of `names`)."""
    measured = checkpoint.get("callbacks", {}).get(EpochLogger.__qualname__, {}).get("measured", {})
    return {name: float(measured[name]) for name in names if name in measured}


def reconstruction_grid(module) -> Image.Image | None:
    """Real | reconstructed, one pair per row."""
    if module.last_reconstruction is None:
        return None
    real, rec = module.last_reconstruction
    rows = [(f"#{i}", [tensor_image(a), tensor_image(b)]) for i, (a, b) in enumerate(zip(real, rec, strict=True))]
    return labelled_grid(rows, cell=min(96, real.shape[-1] * 2))

