"""A training job SIGKILLed with its driver after some epochs resumes, when run again with the same settings, at the
epoch after its last checkpoint, and ends with the weights an uninterrupted run ends with; a finished job leaves no
Ray Train folder behind. Slow: three DiT trainings in their own processes (each starts its own Ray)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import FAST
from mlflow.tracking import MlflowClient

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]
EPOCHS = 8
ENV = {**os.environ, "RAY_ADDRESS": ""}  # each process starts (and, killed, loses) its own local Ray


def _job(trained: Path, out: Path) -> list[str]:
    """The DiT of k = 2 on the pipeline's latents, in an output folder of its own."""
    if not out.exists():
        out.mkdir()
        for stage in ("latents", "classifier"):
            (out / stage).symlink_to(trained / stage)
    return [sys.executable, str(REPO / "jobs" / "train.py"), "--stage", "dit", "--data",
            str(trained.parent / "manifest.json"), "--out", str(out), *FAST, f"dit.epochs={EPOCHS}",
            "dit.train_per_person=2", "dit.steps_per_epoch=3", "workers=2"]


def _epochs_logged(out: Path) -> list[list[int]]:
    """Per MLflow run of the folder (oldest first), the epochs it logged."""
    client = MlflowClient(f"sqlite:///{out / 'mlflow.db'}")
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()], order_by=["start_time ASC"])
    return [sorted({m.step for m in client.get_metric_history(r.info.run_id, "train_loss")}) for r in runs]


def _weights(out: Path) -> dict[str, torch.Tensor]:
    state = torch.load(out / "dit_k2" / "dit.pt", map_location="cpu", weights_only=True)
    return state["model"] | {f"ema.{k}": v for k, v in state["ema"].items()}


def test_a_killed_training_job_resumes_at_its_next_epoch_and_ends_where_an_uninterrupted_one_does(trained, tmp_path):
    reference = tmp_path / "uninterrupted"
    done = subprocess.run(_job(trained, reference), capture_output=True, text=True, env=ENV, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    epochs = re.findall(r"\[dit k=2 replicate 0\] epoch (\d+)/8 · train loss [\d.]+ · val loss [\d.]+ · .*img/s · ETA",
                        done.stdout + done.stderr)  # one progress line per epoch, from rank 0
    assert epochs == [str(e) for e in range(1, EPOCHS + 1)], (epochs, done.stdout[-3000:])
    noise = ("TrainingReport(", "Checkpoint successfully created", "Starting execution of Dataset",
             "Execution plan of Dataset", "is deprecated", "Progress bars disabled",
             "in eval mode at the start of training")  # Ray's (Train's, Data's) INFO logs, libraries' deprecations
    quiet = [line for line in (done.stdout + done.stderr).splitlines() if any(x in line for x in noise)]
    assert not quiet, "Ray's or a library's lines on the default console:\n" + "\n".join(quiet)
    assert not (reference / "ray").exists() or not any((reference / "ray").iterdir()), "a Ray Train folder was left"
    assert not (reference / "dit_k2" / "ray_run_name").exists()

    out, log = tmp_path / "killed", (tmp_path / "killed.log").open("w")
    proc = subprocess.Popen(_job(trained, out), stdout=log, stderr=subprocess.STDOUT, env=ENV,
                            start_new_session=True)
    deadline = time.time() + 400
    while time.time() < deadline and proc.poll() is None:  # kill once two epochs are logged (checkpoints exist)
        # not before the first checkpoint: by then the job has created its MLflow store (reading earlier races that)
        logged = _epochs_logged(out) if any((out / "ray").glob("**/checkpoint_*")) else []
        if logged and len(logged[-1]) >= 2:
            break
        time.sleep(0.1)
    assert proc.poll() is None, f"the job ended (rc {proc.returncode}) before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    before = _epochs_logged(out)[-1]
    assert before and before[-1] < EPOCHS - 1, f"killed too late: epochs {before}"
    assert (out / "dit_k2" / "ray_run_name").is_file()

    again = subprocess.run([*_job(trained, out), "--verbose"], capture_output=True, text=True, env=ENV, timeout=600)
    text = again.stdout + again.stderr
    assert again.returncode == 0, text[-3000:]
    assert "Checkpoint successfully created" in text, "--verbose: Ray's INFO logs are back"
    assert "resuming Ray Train run dit-" in text, text[-3000:]
    resumed = re.search(r"resumed from its checkpoint after epoch (\d+) of (\d+)", text)
    assert resumed and int(resumed.group(2)) == EPOCHS, text[-3000:]
    at = int(resumed.group(1))  # epochs done: the last checkpoint Ray Train committed is epoch `at` (1-based)
    # a worker logs an epoch once its checkpoint is written, but Ray Train's controller registers that checkpoint
    # (what a resumed run restores) when it next polls the workers: a kill may land before it did (more likely on
    # a slower machine), or after the next epoch's checkpoint was written but before it was logged
    assert before[-1] <= at <= before[-1] + 2, (at, before)
    after = _epochs_logged(out)[-1]
    print(f"killed after epochs {before}; resumed after epoch {at}; the new run logged epochs {after}")
    assert after == list(range(at, EPOCHS)), after  # the epochs after the checkpoint, none redone from 0

    ref, res = _weights(reference), _weights(out)
    assert ref.keys() == res.keys()
    differ = [k for k in ref if not torch.equal(ref[k], res[k])]
    assert not differ, f"{len(differ)} tensors differ from the uninterrupted run's, e.g. {differ[:3]}"
    assert not (out / "dit_k2" / "ray_run_name").exists() and not any((out / "ray").iterdir())

