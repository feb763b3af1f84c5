"""The MLflow UI, as a user opens it on a pipeline's store (headless Chromium): the link the pipeline prints opens the
Model training view (a bare one, MLflow 3.17's GenAI view: README says so), a training run shows who created it
from which source and lists the rows it trained on as a dataset, the generator is a logged model in the experiment's
Models tab linked to its registered version, the DiT run's sample grids step through its epochs with the UI's
slider, the evaluation run's description is the verdict, and the runs' times are today's, not 1970's."""

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
from browser import in_browser
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


SAMPLE = "document.querySelector('img[src*=\"get-artifact?path=images%2Fsamples%2Bstep%2B{step}%2B\"]')?.src"
SLIDER = "[role=slider][aria-label='Slider thumb']"


async def _step_through_samples(page) -> dict:
    """On the DiT run's Model metrics tab: the sample grid's image at step 0, the step slider's range, and the image
    after one press of → on the slider (the next epoch's grid)."""
    first = await page.until(SAMPLE.format(step=0))
    top = await page.until(f"document.querySelector(\"{SLIDER}\")?.getAttribute('aria-valuemax')", scroll=False)
    before = await page.js(SAMPLE.format(step=1))  # not shown before the slider moves
    if first and top:
        await page.key(SLIDER, "ArrowRight")
    return {"first": first, "max": top, "before": before,
            "next": first and top and await page.until(SAMPLE.format(step=1), 20, False)}


def test_the_printed_link_opens_the_training_view_with_datasets_models_and_real_times(pipeline_run, tmp_path):
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
    model = client.search_logged_models([exp])[0].model_id
    ui, ml = f"http://127.0.0.1:{port}/#/experiments/{exp}", "?workflowType=machine_learning"
    assert f"#/experiments/{exp}{ml}" in (pipeline_run / "first_run.log").read_text().splitlines()[-1]  # ui_hint
    try:
        wait_for(f"http://127.0.0.1:{port}/health", server, "mlflow server")
        bare = page_text(f"{ui}/runs/{dit}")
        dit_page = page_text(f"{ui}/runs/{dit}{ml}")
        eval_page = page_text(f"{ui}/runs/{evaluation}{ml}")
        models = page_text(f"{ui}/models{ml}")
        model_page = page_text(f"{ui}/models/{model}{ml}")
        samples = in_browser(f"{ui}/runs/{dit}/model-metrics{ml}", _step_through_samples)
    finally:
        os.killpg(server.pid, 9)
        server.wait()
    # the view really selected: its side bar (GenAI: Observability, Judges, …; Model training: Runs, Models, …)
    assert "Judges" in bare and "Model registry" not in bare, bare[:40]
    assert "Model registry" in dit_page and "Judges" not in dit_page, dit_page[:40]
    for field in ("Created by", "Source"):
        assert dit_page[dit_page.index(field) + 1] not in ("—", "-"), (field, dit_page)
    datasets = dit_page.index("Datasets", dit_page.index("Created at"))
    assert re.fullmatch(r"manifest-[0-9a-f]{8}-train \([0-9a-f]+\)", dit_page[datasets + 1])
    assert dit_page[datasets + 2] == "training"
    created = dit_page[dit_page.index("Created at") + 1]
    assert time.strftime("%Y") in created and "1970" not in created, created
    verdict = (pipeline_run / "eval" / "verdict.txt").read_text().splitlines()[0]
    assert verdict in eval_page  # the evaluation run's description
    row = models.index("generator")  # the Models tab: the logged generator, from the run that registered it
    assert "register-generator" in models[row:row + 6], models
    for field in ("Created by", "Logged from"):  # the logged model's own page, from the run that logged it
        assert model_page[model_page.index(field) + 1] not in ("—", "-"), (field, model_page)
    versions = model_page.index("Model versions")  # linked to its registered version
    assert model_page[versions + 1] == "mdaug-generator" and re.fullmatch(r"v\d+", model_page[versions + 2])
    # the DiT run's sample grids, one per epoch (log_image with the epoch as step), behind the UI's step slider
    epochs = len(client.get_metric_history(dit, "identity_ratio"))
    assert samples["first"] and samples["max"] == str(epochs - 1) and not samples["before"] and samples["next"], \
        samples
