"""Resumable sampling sweeps on the pipeline fixture's tiny DiT (conftest): the same inputs resume (finished trials
kept), other inputs start afresh; a sweep SIGKILLed between its trials and rerun ends
with the trials and best settings of the fixture's uninterrupted sweep, without running a finished trial again.
Tune's state is restored only when the driver recorded it: a forged state file is never unpickled."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pyarrow.fs
import pytest
from mlflow.tracking import MlflowClient

from mdaug.ray_mlflow.sweep import SweepConfig, run_sweep
from mdaug.ray_mlflow.sweep_resume import EXPERIMENT, STATE_RECORD, read_state_record, tune_storage, unverified_state

REPO = Path(__file__).resolve().parents[1]
PIPELINE_SWEEP = SweepConfig(trials=2, per_person=2, steps=(4, 16))  # conftest.small_pipeline's sweep


def _trial_runs(tracking_dir: Path) -> list:
    """The sweep-trial MLflow runs in the folder's store, oldest first."""
    client = MlflowClient(f"sqlite:///{tracking_dir / 'mlflow.db'}")
    exp = client.get_experiment_by_name("mdaug").experiment_id
    return client.search_runs([exp], "tags.stage = 'sweep-trial'", order_by=["start_time ASC"])


def _sweep_runs(tracking_dir: Path) -> list:
    client = MlflowClient(f"sqlite:///{tracking_dir / 'mlflow.db'}")
    exp = client.get_experiment_by_name("mdaug").experiment_id
    return client.search_runs([exp], "tags.stage = 'sweep'", order_by=["start_time ASC"])


def _trials(out: Path) -> list[dict]:
    """trials.csv without the timing column."""
    with (out / "trials.csv").open() as f:
        return [{k: v for k, v in row.items() if k != "images_per_s"} for row in csv.DictReader(f)]


def _trial_states(out: Path) -> list[dict]:
    """The trials in the newest experiment state Tune saved in the storage ([] while there is none or it is
    mid-write)."""
    states = sorted((Path(tune_storage(out)) / EXPERIMENT).glob("experiment_state-*.json"))
    try:
        return [json.loads(t[0]) for t in json.loads(states[-1].read_text())["trial_data"]] if states else []
    except (json.JSONDecodeError, OSError):
        return []


def _statuses(out: Path) -> list[str]:
    return [t["status"] for t in _trial_states(out)]


def _terminated(out: Path) -> set[str]:
    """The ids of the trials the storage's newest experiment state holds finished."""
    return {t["trial_id"] for t in _trial_states(out) if t["status"] == "TERMINATED"}


def _kill_after_one_trial(proc: subprocess.Popen, out: Path, log: Path, timeout_s: float = 300) -> set:
    """SIGKILL the sweep while its storage shows exactly one trial finished, at a moment the storage holds only
    state its driver recorded: the process group is frozen (SIGSTOP) and checked, else let go and watched
    again. Tune uploads its state by rewriting the storage's files, so a kill during an upload leaves a partial
    file there, which a rerun refuses (sweep_resume). Returns the finished trials' ids."""
    experiment = str(Path(tune_storage(out)) / EXPERIMENT)
    deadline = time.time() + timeout_s
    while proc.poll() is None and time.time() < deadline:
        if len(_terminated(out)) == 1:
            os.killpg(proc.pid, signal.SIGSTOP)
            record = read_state_record(out / STATE_RECORD)
            if (len(_terminated(out)) == 1
                    and unverified_state(pyarrow.fs.LocalFileSystem(), experiment, experiment, record) is None):
                break
            os.killpg(proc.pid, signal.SIGCONT)
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    finished = _terminated(out)
    assert len(finished) == 1, (f"no consistent moment with one finished trial in {timeout_s:.0f} s (exit code "
                                f"{proc.returncode}): {_statuses(out)}\n{log.read_text()[-3000:]}")
    return finished


@pytest.mark.slow  # ≈ 30 s: the default tier stays under 8 minutes
def test_same_inputs_resume_and_other_inputs_start_afresh(trained, tmp_path, ray_local, capfd):
    dit, out = str(trained / "dit_k2" / "dit.pt"), tmp_path / "sweep"
    one = replace(PIPELINE_SWEEP, trials=1, cpus_per_trial=2)
    first = run_sweep(dit, None, out, one, tracking_dir=tmp_path)
    console = capfd.readouterr().out  # one line per trial and the best, not Tune's (with MDAUG_VERBOSE=1)
    assert "[sweep] trial 1/1 · cfg_scale " in console and "[sweep] best: cfg_scale " in console, console[-3000:]
    assert not any(x in console for x in ("Trial status", "Configuration for experiment", "View detailed results",
                                          "tensorboard --logdir", "tstr_accuracy   frechet")), console[-3000:]
    runs = _trial_runs(tmp_path)
    assert len(runs) == 1 and runs[0].data.tags["device"] == "cpu"  # no GPU given: generation and scoring on cpu
    assert json.loads(runs[0].data.tags["ray_resources"]) == {"CPU": 2.0}  # what Ray gave the trial: the config's
    rows = _trials(out)
    with pytest.raises(ValueError, match=r"a sweep trial needs 1 GPU; the cluster has 0 GPU\. Lower "
                                         r"cpus_per_trial / gpus_per_trial \(the sweep section\), or .* "
                                         r"--resource-wait-s SECONDS .*now 0\)"):
        run_sweep(dit, None, out, replace(one, gpus_per_trial=1), tracking_dir=tmp_path)  # not a wait forever

    # the same inputs: the finished experiment is restored, no trial runs again
    assert run_sweep(dit, None, out, one, tracking_dir=tmp_path) == first
    assert len(_trial_runs(tmp_path)) == 1 and _trials(out) == rows
    assert [r.data.tags["resumed"] for r in _sweep_runs(tmp_path)] == ["false", "true"]

    # a sweep killed before Tune first saved its state (tuner.pkl only) starts afresh instead of failing to restore
    for state in (Path(tune_storage(out)) / EXPERIMENT).glob("experiment_state-*.json"):
        state.unlink()
    assert run_sweep(dit, None, out, one, tracking_dir=tmp_path) == first
    assert len(_trial_runs(tmp_path)) == 2 and _sweep_runs(tmp_path)[-1].data.tags["resumed"] == "false"

    # another seed: a new experiment (the old one's trial folder is gone), a new trial with other settings
    record = json.loads((Path(tune_storage(out)) / f"{EXPERIMENT}.inputs.json").read_text())
    second = run_sweep(dit, None, out, replace(one, seed=1), tracking_dir=tmp_path)
    assert second != first and len(_trial_runs(tmp_path)) == 3
    assert _sweep_runs(tmp_path)[-1].data.tags["resumed"] == "false"
    assert len(list((Path(tune_storage(out)) / EXPERIMENT).glob("trial_*"))) == 1
    assert json.loads((Path(tune_storage(out)) / f"{EXPERIMENT}.inputs.json").read_text())["hash"] != record["hash"]


@pytest.mark.slow
def test_killed_sweep_resumes_to_the_uninterrupted_trials(trained, tmp_path, ray_local):
    dit, out = trained / "dit_k2" / "dit.pt", tmp_path / "sweep"
    args = [sys.executable, REPO / "tests" / "sweep_job.py", "--dit", dit, "--out", out, "--tracking-dir", tmp_path,
            "trials=2", "per_person=2", "steps=[4,16]", "cfg_scale=[1,12]"]  # = PIPELINE_SWEEP
    # TUNE_GLOBAL_CHECKPOINT_S=0: Tune saves its state at every step, so the first finished trial shows at once
    log, t0 = tmp_path / "killed.log", time.time()
    with log.open("w") as f:
        proc = subprocess.Popen(args, stdout=f, stderr=subprocess.STDOUT, start_new_session=True,
                                env={**os.environ, "RAY_ADDRESS": "", "TUNE_GLOBAL_CHECKPOINT_S": "0"})
        _kill_after_one_trial(proc, out, log)
    statuses = _statuses(out)
    print(f"killed {time.time() - t0:.1f} s after the start, trial statuses {statuses}")
    assert len(statuses) == 2  # killed between the two trials
    assert not (out / "best_sampling.yaml").exists()
    finished = [r.data.tags["mlflow.runName"] for r in _trial_runs(tmp_path) if r.info.status == "FINISHED"]
    assert len(finished) == 1

    t1 = time.time()
    run_sweep(str(dit), None, out, PIPELINE_SWEEP, tracking_dir=tmp_path)
    print(f"resumed sweep: {time.time() - t1:.1f} s")
    runs = _trial_runs(tmp_path)
    assert Counter(r.data.tags["mlflow.runName"] for r in runs)[finished[0]] == 1  # the finished trial did not rerun
    assert len(runs) == 2  # one run per trial: one cut off mid-trial took up the run it had started
    assert len({r.data.tags["mlflow.runName"] for r in runs if r.info.status == "FINISHED"}) == 2
    assert _sweep_runs(tmp_path)[-1].data.tags["resumed"] == "true"
    reference = trained.parent / "sweep"  # the pipeline fixture's uninterrupted sweep, same inputs
    assert _trials(out) == _trials(reference)
    assert (out / "best_sampling.yaml").read_text() == (reference / "best_sampling.yaml").read_text()


def test_a_failed_trial_ends_its_one_run_failed_and_a_rerun_takes_that_run_up(tmp_path, ray_local):
    """Every trial has exactly one MLflow run: a trial that raises ends it FAILED with the error; the same trial run
    again (as a restored sweep does with a trial it cut off) takes up that run instead of adding one."""
    import ray

    from mdaug.ray_mlflow.sweep import trial

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = client.create_experiment("mdaug")
    ctx = {"tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}", "experiment_id": exp,
           "parent_run_id": client.create_run(exp).info.run_id, "dit": str(tmp_path / "missing_dit.pt"), "vae": None}
    config = {"cfg_scale": 4.0, "steps": 8, "cfg_interval_start": 0.1, "timestep_shift": 0.3}
    in_a_worker = ray.remote(num_cpus=1)(trial)  # as Tune runs it: in a Ray worker (outside Tune's session here)
    for _ in range(2):
        with pytest.raises(Exception, match="missing_dit.pt"):
            ray.get(in_a_worker.remote(config, ctx))
    runs = client.search_runs([exp], "tags.stage = 'sweep-trial'")
    assert len(runs) == 1 and runs[0].info.status == "FAILED", [(r.info.run_id, r.info.status) for r in runs]
    assert "missing_dit.pt" in runs[0].data.tags["error"] and runs[0].data.params["steps"] == "8"


def test_the_optuna_search_is_seeded():
    """The `optuna` extra: search=optuna suggests the same settings for the same seed, others for another."""
    from mdaug.ray_mlflow.sweep import search_algorithm, search_space

    def suggested(seed: int) -> list[dict]:
        search = search_algorithm("optuna", seed)
        search.set_search_properties("frechet", "min", search_space(PIPELINE_SWEEP))
        return [search.suggest(f"trial{i}") for i in range(3)]

    first = suggested(0)
    assert first == suggested(0) and first != suggested(1)
    assert all(4 <= s["steps"] <= 16 and 1.0 <= s["cfg_scale"] <= 12.0 for s in first)


class _Payload:
    """Unpickling it creates the file `marker` (what a forged Tune state file could do on the driver)."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


def _tiny_tuner(out: Path, inputs: dict):
    """resumable_tuner on a trivial function trainable: building or restoring a Tuner needs no Ray."""
    from ray import tune

    from mdaug.ray_mlflow.sweep_resume import resumable_tuner

    def trainable(config):
        tune.report({"x": config["a"]})

    return resumable_tuner(trainable, {"a": tune.uniform(0, 1)}, tune.TuneConfig(metric="x", mode="min"),
                           tune_storage(out), inputs, record_dir=out)


def test_a_forged_tune_state_is_never_unpickled(tmp_path, capsys):
    """Only state files whose sha256 the driver recorded in its output folder are restored; a forged tuner.pkl
    (or a file the driver never wrote) starts the sweep afresh, and the forged file is never unpickled."""
    import pickle

    from mdaug.ray_mlflow.sweep_resume import STATE_RECORD, record_state

    out, marker = tmp_path / "sweep", tmp_path / "pwned"
    experiment = Path(tune_storage(out)) / EXPERIMENT
    tuner, resumed = _tiny_tuner(out, {"v": 1})
    record = json.loads((out / STATE_RECORD).read_text())
    assert not resumed and list(record["files"]) == ["tuner.pkl"] and record["experiment"] == str(experiment)
    state = experiment / "experiment_state-2026.json"  # as if Tune had saved (and the recorder recorded) its state
    state.write_text("{}")
    record_state(out / STATE_RECORD, str(experiment), {state.name: hashlib.sha256(b"{}").hexdigest()})
    assert _tiny_tuner(out, {"v": 1})[1]  # the driver's own state: restored

    forged = pickle.dumps(_Payload(marker))
    for forge in ("tuner.pkl", "experiment_state-2027.json", "searcher-state-2026.pkl"):
        state.write_text("{}")
        (experiment / forge).write_bytes(forged)
        tuner, resumed = _tiny_tuner(out, {"v": 1})
        assert not resumed and not marker.exists(), forge
        assert f"not resuming the sweep in {experiment}: {forge} in the storage " in capsys.readouterr().out
        assert not state.exists() and (experiment / "tuner.pkl").read_bytes() != forged  # started afresh
        assert forge == "tuner.pkl" or not (experiment / forge).exists()
        assert json.loads((out / STATE_RECORD).read_text())["files"].keys() == {"tuner.pkl"}  # a fresh record
        record_state(out / STATE_RECORD, str(experiment), {state.name: hashlib.sha256(b"{}").hexdigest()})

    (experiment / "tuner.pkl").write_bytes(pickle.dumps(_Payload(marker)))
    state.write_text("{}")
    (out / STATE_RECORD).unlink()  # no record (e.g. a sweep from before the record): not restored either
    assert not _tiny_tuner(out, {"v": 1})[1] and not marker.exists()
    assert "holds no record of the Tune state its driver wrote; starting it afresh" in capsys.readouterr().out


@pytest.mark.slow  # ≈ 1 min (2 busy cores): four sweep processes, each starting its own local Ray
def test_a_killed_sweep_resumes_from_the_state_its_driver_recorded(tmp_path):
    """The recorder keeps up with Tune's saves: a sweep SIGKILLed between trials resumes (its finished trial not
    run again); a tuner.pkl forged afterwards is refused (never unpickled) and the sweep starts afresh."""
    import pickle

    out, marker, log = tmp_path / "sweep", tmp_path / "pwned", tmp_path / "killed.log"
    args = [sys.executable, REPO / "tests" / "tiny_sweep_job.py", out, "3", "1"]
    env = {**os.environ, "RAY_ADDRESS": "", "TUNE_GLOBAL_CHECKPOINT_S": "0"}
    with log.open("w") as f:
        proc = subprocess.Popen(args, stdout=f, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        finished = _kill_after_one_trial(proc, out, log)

    def rerun() -> bool:
        run = subprocess.run(args, capture_output=True, text=True, env=env, timeout=180)
        assert run.returncode == 0, run.stderr[-3000:]
        return json.loads(run.stdout.strip().splitlines()[-1])["resumed"]

    assert rerun()
    runs = Counter(p.name.rsplit("-", 1)[0] for p in (out / "ran").iterdir())
    assert len(runs) == 3 and all(runs[trial_id] == 1 for trial_id in finished)  # not run again
    assert rerun() and _statuses(out) == ["TERMINATED"] * 3  # the resumed sweep's own state is recorded too
    (Path(tune_storage(out)) / EXPERIMENT / "tuner.pkl").write_bytes(pickle.dumps(_Payload(marker)))
    assert not rerun() and not marker.exists()
