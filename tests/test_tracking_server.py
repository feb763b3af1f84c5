"""Against a real `mlflow server`: mdaug's runs log there, and the experiments it creates keep the server's
artifact destination (on a cluster, S3) instead of a folder on the node that happened to log."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from mdaug.ray_mlflow.tracking import mlflow_run

pytestmark = pytest.mark.slow  # a server start: ~25 s on a busy 2-core machine
BIN = Path(sys.executable).parent


@pytest.fixture()
def server(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dest = tmp_path / "server-artifacts"
    proc = subprocess.Popen([BIN / "mlflow", "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
                             "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}",
                             "--artifacts-destination", dest.as_uri()],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 90
    while True:
        try:
            urllib.request.urlopen(f"{url}/health", timeout=2)
            break
        except OSError:
            assert proc.poll() is None and time.time() < deadline, "mlflow server did not start"
            time.sleep(0.5)
    yield url, dest
    os.killpg(proc.pid, 9)
    proc.wait()


def test_runs_go_to_the_server_and_artifacts_to_its_destination(server, tmp_path, monkeypatch):
    url, dest = server
    monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
    out = tmp_path / "out"
    note = tmp_path / "note.txt"
    note.write_text("hello")
    with mlflow_run(out, "mdaug-server-test", "probe", {"stage": "probe"}) as (client, run_id):
        client.log_artifact(run_id, str(note))
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED" and run.data.tags["stage"] == "probe"
    assert client.get_experiment(run.info.experiment_id).artifact_location.startswith("mlflow-artifacts:")
    assert [p.read_text() for p in dest.rglob("note.txt")] == ["hello"]  # stored by the server
    assert not (out / "mlartifacts").exists() and not (out / "mlflow.db").exists()
