"""Where a sweep's Tune experiment lives, and whether a rerun resumes it. The experiment's path is fixed by the
sweep's output folder; beside it, `sweep.inputs.json` holds a hash of everything the trials' results depend on.
A rerun with the same inputs restores the experiment (finished trials are kept, unfinished and errored ones run);
other inputs delete it and start afresh. Tune saves the experiment's state every ≥ 10 s, so a trial that finished
in the last seconds before a kill may run again (with the same result)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pyarrow.fs
from ray import tune

EXPERIMENT = "sweep"


def tune_storage(out: Path) -> str:
    """Tune's storage_path for the sweep writing to `out`: a local folder or a URI (s3://…). One per output
    folder: the experiment's name is fixed, so two sweeps sharing a storage path would resume each other's."""
    return str(Path(out).resolve() / "tune")


def inputs_hash(inputs: dict[str, Any]) -> str:
    """sha256 (16 hex) of the sweep's inputs."""
    return hashlib.sha256(json.dumps(inputs, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _recorded_hash(fs: pyarrow.fs.FileSystem, record: str) -> str | None:
    if fs.get_file_info(record).type == pyarrow.fs.FileType.NotFound:
        return None
    with fs.open_input_stream(record) as f:
        return json.loads(f.read()).get("hash")


def _saved_state(fs: pyarrow.fs.FileSystem, experiment: str) -> bool:
    """Whether Tune saved the experiment's state at least once (a sweep killed before that has none to resume)."""
    found = fs.get_file_info(pyarrow.fs.FileSelector(experiment, allow_not_found=True))
    return any(Path(f.path).name.startswith("experiment_state-") for f in found)


def resumable_tuner(trainable: Any, param_space: dict[str, Any], tune_config: tune.TuneConfig, storage: str,
                    inputs: dict[str, Any]) -> tuple[tune.Tuner, bool]:
    """(tuner, resumed): the experiment under `storage` restored (its search state included; `trainable` carries
    this run's context) when it was started from the same inputs, else a new one, after deleting what was there."""
    fs, root = pyarrow.fs.FileSystem.from_uri(storage)
    experiment, record = f"{root}/{EXPERIMENT}", f"{root}/{EXPERIMENT}.inputs.json"
    digest = inputs_hash(inputs)
    path = f"{storage.rstrip('/')}/{EXPERIMENT}"
    if tune.Tuner.can_restore(path) and _saved_state(fs, experiment) and _recorded_hash(fs, record) == digest:
        return tune.Tuner.restore(path, trainable=trainable, resume_errored=True), True
    if fs.get_file_info(experiment).type != pyarrow.fs.FileType.NotFound:
        fs.delete_dir(experiment)
    fs.create_dir(root, recursive=True)
    with fs.open_output_stream(record) as f:
        f.write(json.dumps({"hash": digest, "inputs": inputs}, indent=1, sort_keys=True, default=str).encode())
    return tune.Tuner(trainable, param_space=param_space, tune_config=tune_config,
                      run_config=tune.RunConfig(name=EXPERIMENT, storage_path=storage)), False
