"""`ray job submit --working-dir . -- python jobs/train.py ...` against a head started with `ray start --head`.
Named to run last: `ray stop` ends every Ray process on the machine."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from mdaug.data.split import make_split
from mdaug.sim import SimConfig, simulate_dataset

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def head(tmp_path):
    import ray

    ray.shutdown()  # the session's in-process Ray, if any: this test owns the machine's Ray from here on
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "PATH": f"{BIN}:{os.environ['PATH']}",
           "RAY_USAGE_STATS_ENABLED": "0"}
    env.pop("RAY_ADDRESS", None)
    port, dash = _free_port(), _free_port()
    subprocess.run([BIN / "ray", "start", "--head", f"--port={port}", f"--dashboard-port={dash}",
                    "--dashboard-host=127.0.0.1", "--num-cpus=4", "--disable-usage-stats"],
                   env=env, check=True, capture_output=True, timeout=120)
    yield env, f"http://127.0.0.1:{dash}"
    subprocess.run([BIN / "ray", "stop", "--force"], env=env, capture_output=True, timeout=120)


def test_ray_job_submit_trains_the_vae(head, tmp_path):
    env, address = head
    root = tmp_path / "data"
    simulate_dataset(root, SimConfig(persons=3, per_person=12, size=64), progress=False)
    m, _ = make_split(root, val=0.25, test=0.25, progress=False)
    m.save(tmp_path / "manifest.json")
    out = tmp_path / "out"
    job = subprocess.run(
        [BIN / "ray", "job", "submit", "--address", address, "--working-dir", str(REPO), "--",
         "python", "jobs/train.py", "--stage", "vae", "--preset", "tiny", "--data", str(tmp_path / "manifest.json"),
         "--out", str(out), "vae.epochs=1", "vae.batch_size=4"],
        env=env, capture_output=True, text=True, timeout=420)
    assert job.returncode == 0, job.stdout[-3000:] + job.stderr[-3000:]
    assert "succeeded" in job.stdout
    assert (out / "vae" / "vae.pt").is_file()
    client = MlflowClient(f"sqlite:///{out / 'mlflow.db'}")
    run = client.search_runs([client.get_experiment_by_name("mdaug").experiment_id])[0]
    assert run.info.status == "FINISHED" and run.data.tags["stage"] == "vae"
