"""The MLflow UI, as a user opens it on a pipeline's store (headless Chromium): the experiment is a model-training
one, a training run lists the rows it trained on as a dataset, the evaluation run's description is the verdict, and
the runs' times are today's, not 1970's."""

from __future__ import annotations

import html
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from s3_server import free_port, wait_for

pytestmark = pytest.mark.slow  # an MLflow server and a browser: ≈ 30 s
BIN = Path(sys.executable).parent


def page_text(url: str) -> list[str]:
    """The rendered page's text lines (the UI is a single-page app: Chromium runs its scripts first)."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium and not os.environ.get("MDAUG_REQUIRE_CHROMIUM"):
        pytest.skip("MLflow UI not checked: chromium is not installed (apt-get install chromium)")
    assert chromium, "chromium is not installed (.ci/run installs the Debian package)"
    dom = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                          "--virtual-time-budget=20000", "--dump-dom", url], capture_output=True, text=True,
                         timeout=180).stdout
    text = re.sub(r"<[^>]+>", "\n", re.sub(r"<(script|style).*?</\1>", " ", dom, flags=re.S))
    return [line.strip() for line in html.unescape(text).splitlines() if line.strip()]


def test_the_ui_shows_datasets_descriptions_and_real_times(pipeline_run, tmp_path):
    store = tmp_path / "mlflow.db"  # a copy: the server never touches the session's store
    shutil.copy(pipeline_run / "mlflow.db", store)
    client = MlflowClient(f"sqlite:///{store}")
    exp = client.get_experiment_by_name("mdaug").experiment_id
    dit = client.search_runs([exp], "tags.stage = 'dit'")[0].info.run_id
    evaluation = client.search_runs([exp], "tags.kind = 'evaluation'")[0].info.run_id
    port = free_port()
    server = subprocess.Popen([BIN / "mlflow", "server", "--backend-store-uri", f"sqlite:///{store}", "--host",
                               "127.0.0.1", "--port", str(port), "--workers", "1"],
                              env=os.environ | {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_for(f"http://127.0.0.1:{port}/health", server, "mlflow server")
        dit_page = page_text(f"http://127.0.0.1:{port}/#/experiments/{exp}/runs/{dit}")
        eval_page = page_text(f"http://127.0.0.1:{port}/#/experiments/{exp}/runs/{evaluation}")
    finally:
        os.killpg(server.pid, 9)
        server.wait()
    assert "Model training" in dit_page  # the experiment kind: the UI's training view, not the GenAI one
    datasets = dit_page.index("Datasets", dit_page.index("Created at"))
    assert re.fullmatch(r"manifest-[0-9a-f]{8}-train \([0-9a-f]+\)", dit_page[datasets + 1])
    assert dit_page[datasets + 2] == "training"
    created = dit_page[dit_page.index("Created at") + 1]
    assert time.strftime("%Y") in created and "1970" not in created, created
    verdict = (pipeline_run / "eval" / "verdict.txt").read_text().splitlines()[0]
    assert verdict in eval_page  # the evaluation run's description
