"""Manifests as MLflow datasets: the rows a run trained on, validated on or was scored on, logged as the run's
inputs (mlflow.data) with their digest and context, so MLflow's UI shows what every run saw."""

from __future__ import annotations

import warnings

import pandas as pd
from mlflow.data.pandas_dataset import from_pandas
from mlflow.entities import DatasetInput, InputTag
from mlflow.tracking import MlflowClient

from mdaug.data.manifest import Manifest, Row

CONTEXT = {"train": "training", "val": "validation", "test": "testing"}  # MLflow's names for a dataset's role


def rows_dataset(manifest: Manifest, rows: list[Row], location: str, split: str):
    """An mlflow.data dataset of manifest rows (path, person, label, sha256): its digest changes with any row."""
    df = pd.DataFrame([{"path": r.path, "person": r.person, "label": r.label, "sha256": r.sha256} for r in rows],
                      columns=["path", "person", "label", "sha256"])
    return from_pandas(df, source=location, targets="label", name=f"manifest-{manifest.content_hash()[:8]}-{split}")


def log_manifest_inputs(client: MlflowClient, run_id: str, manifest: Manifest, location: str,
                        rows: dict[str, list[Row]]) -> None:
    """Log each split's rows (e.g. {"train": the rows a stage trained on, "val": …}) as the run's inputs."""
    with warnings.catch_warnings():  # MLflow's hints on integer columns and on a local path's two readings
        warnings.simplefilter("ignore", UserWarning)
        inputs = [DatasetInput(rows_dataset(manifest, split_rows, location, split)._to_mlflow_entity(),
                               [InputTag("mlflow.data.context", CONTEXT[split])])
                  for split, split_rows in rows.items() if split_rows]
    client.log_inputs(run_id, datasets=inputs)
