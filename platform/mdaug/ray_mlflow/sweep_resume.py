"""Where a sweep's Tune experiment lives, and whether a rerun resumes it. The experiment's path is fixed by the
sweep's output folder; beside it, `sweep.inputs.json` holds a hash of everything the trials' results depend on.
A rerun with the same inputs restores the experiment (finished trials are kept, unfinished and errored ones run);
other inputs delete it and start afresh. Tune saves the experiment's state every ≥ 10 s, so a trial that finished
in the last seconds before a kill may run again (with the same result). Tune uploads its state by rewriting the
storage's files: a kill during an upload (≈ 0.6 % of moments with a save at every step) leaves a partial file,
which the rerun refuses, starting the sweep afresh.
Restoring unpickles Tune's state files (tuner.pkl, experiment_state-*.json, searcher and callback state) from the
storage, which every worker can write: the driver records the sha256 of each version it writes in its own output
folder (STATE_RECORD, never in the storage) and restores only when every such file in the storage is one of them."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pyarrow.fs
from ray import tune

from mdaug.console import verbose

EXPERIMENT = "sweep"
STATE_RECORD = "tune_state.sha256.json"  # in the driver's output folder: the digests of the Tune state it wrote
KEPT = 8  # versions kept per file: Tune uploads its state in the background, so the storage may lag a few saves
TUNER_PKL = "tuner.pkl"


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


def is_state_file(name: str) -> bool:
    """Whether Tune's restore reads the experiment folder's top-level entry `name`: it copies every .json and .pkl
    there to the driver and unpickles tuner.pkl, the newest experiment_state-*.json and the searcher's and
    callbacks' newest state files."""
    return name.endswith((".json", ".pkl"))


def read_state_record(path: Path) -> dict | None:
    """{"experiment": path, "files": {name: [sha256, …]}}; None when missing or unreadable."""
    try:
        record = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and isinstance(record.get("files"), dict) else None


def record_state(path: Path, experiment: str, digests: dict[str, str], fresh: bool = False) -> None:
    """Add the digests of state files the driver wrote to the record at `path` (atomically; `fresh`: replace it)."""
    record = None if fresh else read_state_record(path)
    if record is None or record.get("experiment") != experiment:
        record = {"experiment": experiment, "files": {}}
    files, changed = record["files"], fresh
    for name, digest in digests.items():
        kept = files.setdefault(name, [])
        if digest not in kept:
            files[name], changed = (kept + [digest])[-KEPT:], True
    if changed:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps(record, indent=1, sort_keys=True))
        os.replace(tmp, path)


def unverified_state(fs: pyarrow.fs.FileSystem, experiment_fs_path: str, experiment: str,
                     record: dict | None) -> str | None:
    """Why the experiment's state must not be restored (None: every state file Tune would read is a version
    this driver wrote, by its sha256 in `record`). Reads bytes only; unpickles nothing."""
    if record is None:
        return "this output folder holds no record of the Tune state its driver wrote"
    if record.get("experiment") != experiment:
        return f"the recorded Tune state is that of {record.get('experiment')}"
    known, seen = record["files"], set()
    for info in fs.get_file_info(pyarrow.fs.FileSelector(experiment_fs_path, allow_not_found=True)):
        name = Path(info.path).name
        if not is_state_file(name):
            continue
        if info.type != pyarrow.fs.FileType.File or name not in known:
            return f"{name} in the storage was not written by this sweep's driver"
        with fs.open_input_stream(info.path) as f:
            if hashlib.sha256(f.read()).hexdigest() not in known[name]:
                return f"{name} in the storage differs from every version this sweep's driver wrote"
        seen.add(name)
    return None if TUNER_PKL in seen else f"no {TUNER_PKL} in the storage"


class StateRecorder(tune.Callback):
    """On the driver: after each of Tune's saves of the experiment state (into the driver's staging folder, before
    it is uploaded) and at the end, adds the sha256 of every state file there to the record in the output folder."""

    def __init__(self, record: Path, experiment: str) -> None:
        self.record, self.experiment = Path(record), experiment
        self._staging: Path | None = None
        self._seen: dict[str, tuple[int, int]] = {}  # name → (mtime_ns, size) when last hashed

    def __getstate__(self) -> dict:  # pickled into tuner.pkl: without this run's staging folder and cache
        return {"record": self.record, "experiment": self.experiment}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["record"], state["experiment"])

    def _note(self, trials: list) -> None:
        if trials:
            self._staging = Path(trials[0].local_experiment_path)
        self.save()

    def save(self) -> None:
        """Record the state files in the staging folder that changed since the last call."""
        if self._staging is None or not self._staging.is_dir():
            return
        digests = {}
        for f in self._staging.iterdir():
            if not f.is_file() or not is_state_file(f.name):
                continue
            stamp = (f.stat().st_mtime_ns, f.stat().st_size)
            if self._seen.get(f.name) != stamp:
                digests[f.name], self._seen[f.name] = hashlib.sha256(f.read_bytes()).hexdigest(), stamp
        if digests:
            record_state(self.record, self.experiment, digests)

    def on_step_begin(self, iteration: int, trials: list, **info) -> None:
        self._note(trials)

    def on_step_end(self, iteration: int, trials: list, **info) -> None:
        self._note(trials)

    def on_experiment_end(self, trials: list, **info) -> None:
        self._note(trials)

    def get_state(self) -> None:  # Tune asks right after writing its state to the staging folder, before the upload
        self.save()
        return None


def resumable_tuner(trainable: Any, param_space: dict[str, Any], tune_config: tune.TuneConfig, storage: str,
                    inputs: dict[str, Any], record_dir: Path,
                    callbacks: tuple[tune.Callback, ...] = ()) -> tuple[tune.Tuner, bool]:
    """(tuner, resumed): the experiment under `storage` restored (its search state included; `trainable` carries
    this run's context) when it was started from the same inputs and its state files are ones this driver wrote
    (their sha256 in record_dir/STATE_RECORD: a local folder of the driver's, never the storage), else a new one,
    after deleting what was there. Tune's own console tables only with MDAUG_VERBOSE=1 (`callbacks` may print a
    line per trial)."""
    fs, root = pyarrow.fs.FileSystem.from_uri(storage)
    experiment, record = f"{root}/{EXPERIMENT}", f"{root}/{EXPERIMENT}.inputs.json"
    digest = inputs_hash(inputs)
    path = f"{storage.rstrip('/')}/{EXPERIMENT}"
    state_record = Path(record_dir) / STATE_RECORD
    if tune.Tuner.can_restore(path) and _saved_state(fs, experiment) and _recorded_hash(fs, record) == digest:
        why = unverified_state(fs, experiment, path, read_state_record(state_record))
        if why is None:
            return tune.Tuner.restore(path, trainable=trainable, resume_errored=True), True
        print(f"not resuming the sweep in {path}: {why}; starting it afresh", flush=True)
    if fs.get_file_info(experiment).type != pyarrow.fs.FileType.NotFound:
        fs.delete_dir(experiment)
    fs.create_dir(root, recursive=True)
    with fs.open_output_stream(record) as f:
        f.write(json.dumps({"hash": digest, "inputs": inputs}, indent=1, sort_keys=True, default=str).encode())
    tuner = tune.Tuner(trainable, param_space=param_space, tune_config=tune_config,
                       run_config=tune.RunConfig(name=EXPERIMENT, storage_path=storage, verbose=3 if verbose() else 0,
                                                 callbacks=[StateRecorder(state_record, path), *callbacks]))
    with fs.open_input_stream(f"{experiment}/{TUNER_PKL}") as f:  # just written by the Tuner, before any trial
        record_state(state_record, path, {TUNER_PKL: hashlib.sha256(f.read()).hexdigest()}, fresh=True)
    return tuner, False
