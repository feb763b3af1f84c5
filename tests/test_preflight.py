"""The resource pre-flight against a real cluster that grows (tests/growing_cluster_job.py, in a process of its own
with its own Ray temp folder): it asks the autoscaler for the workers' bundles, passes once a node with enough CPUs
joins, refuses with a clear error after the configured wait, and withdraws its request either way; shapes the
totals hold but no node (or no packing) can place are refused, not left waiting forever. Evaluation and
generation refuse what the cluster lacks the same way."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow  # ≈ 15–25 s: its own cluster in a subprocess; the default tier stays under 8 minutes
def test_preflight_waits_for_the_autoscaler_and_refuses_after_the_wait():
    ray_tmp = tempfile.mkdtemp(prefix="rc", dir="/tmp")  # short: Ray's socket paths live under it
    try:
        run = subprocess.run([sys.executable, REPO / "tests" / "growing_cluster_job.py"], capture_output=True,
                             text=True, timeout=180, env={**os.environ, "RAY_ADDRESS": "", "RAY_TMPDIR": ray_tmp})
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    refused, grown = result["refused"], result["grown"]
    print(f"refused after {refused['seconds']} s (wait 2 s); passed after {grown['seconds']} s (node added at 1 s)")
    assert refused["error"].startswith("training (2 workers × 1.5 CPU) needs 3 CPU; the cluster has 1 CPU after "
                                       "waiting 2 s")
    assert "resource_wait_s=SECONDS (now 2)" in refused["error"] and "Lower workers or cpus_per_worker" in \
        refused["error"]
    assert 2.0 <= refused["seconds"] < 4.0
    assert grown["request_during"] == [{"CPU": 1.5}, {"CPU": 1.5}]  # one bundle per worker
    assert grown["error"] is None and 1.0 <= grown["seconds"] < 30 and grown["cluster_cpus"] == 5
    assert refused["request_after"] == grown["request_after"] == []  # withdrawn: nodes may scale down again
    assert "pre-flight: the cluster lacks 2 CPU; asked the autoscaler for 2 × {'CPU': 1.5}" in run.stdout
    split, packed, fits = result["split"], result["packed"], result["fits"]
    print(f"unplaceable shapes refused after {split['seconds']} s (no node holds one) and {packed['seconds']} s "
          f"(a 2 s placement wait); a placeable one passed in {fits['seconds']} s")
    assert split["error"].startswith("training (1 worker × 4.5 CPU): 1 × {'CPU': 4.5} fit the cluster's totals but "
                                     "no node holds one (the largest has {'CPU': 4.0}). Lower workers or "
                                     "cpus_per_worker")
    assert split["seconds"] < 2.0
    assert packed["error"].startswith("training (3 workers × 1.5 CPU): 3 × {'CPU': 1.5} fit the cluster's totals but "
                                      "Ray could not place them within 2 s (the nodes are too small")
    assert 2.0 <= packed["seconds"] < 6.0
    assert fits["error"] is None and grown["placement_groups_left"] == 0  # the checks' groups are removed


def test_evaluation_and_generation_refuse_resources_the_cluster_lacks(ray_local, manifest64, tmp_path):
    """On the 4-CPU, GPU-less local Ray: an evaluation with gpus_per_run=1 is refused after its data checks, before
    any Ray task, MLflow run or output folder (and after its resource_wait_s); a generation whose actors ask for a
    GPU, or for more CPUs than there are, before it reads its DiT (none exists here). The wording is that of the
    training and sweep checks."""
    from test_evaluation import as_generated

    from mdaug.evaluation.config import EvalConfig
    from mdaug.flow.sampler import SamplingConfig
    from mdaug.ray_mlflow.eval_job import run_evaluation
    from mdaug.ray_mlflow.generate_job import run_generate_job
    from mdaug.sim import SimConfig, simulate_dataset

    simulate_dataset(tmp_path / "k3", SimConfig(persons=4, per_person=12, size=64, first_sample=100), progress=False)
    cfg = EvalConfig(data=str(manifest64), synthetic=(str(as_generated(tmp_path / "k3", manifest64, 3)),),
                     out=str(tmp_path / "eval"), ks=(3,), control_ks=(3,), seeds=2, gpus_per_run=1)
    lower = r"\. Lower cpus_per_run / gpus_per_run \(the evaluation section\), or give an autoscaling cluster time"
    t0 = time.monotonic()
    with pytest.raises(ValueError, match=rf"^an evaluation run needs 1 GPU; the cluster has 0 GPU{lower} to add "
                                         r"nodes: resource_wait_s=SECONDS \(the pipeline's; now 0\)\.$"):
        run_evaluation(cfg, tracking_dir=tmp_path, echo=lambda line: None)
    refused = time.monotonic() - t0
    with pytest.raises(ValueError, match=rf"^an evaluation run needs 1 GPU; the cluster has 0 GPU after waiting 1 s "
                                         rf"for the autoscaler{lower}.* \(the pipeline's; now 1\)\.$"):
        run_evaluation(cfg, tracking_dir=tmp_path, echo=lambda line: None, resource_wait_s=1)
    waited = time.monotonic() - t0 - refused
    for workers, gpus, message in ((2, 0.5, r"generation \(2 actors × 0.5 GPU\) needs 1 GPU; the cluster has 0 GPU\. "
                                              r"Lower --workers / --gpus-per-worker, or"),
                                   (6, 0.0, r"generation \(6 actors × 1 CPU\) needs 6 CPU; the cluster has 4 CPU\. "
                                            r"Lower --workers \(workers in the pipeline\), or")):
        with pytest.raises(ValueError, match=rf"^{message} .* --resource-wait-s SECONDS \(now 0\)\.$"):
            run_generate_job(str(tmp_path / "dit.pt"), tmp_path / "syn", 1, SamplingConfig(), workers=workers,
                             gpus_per_worker=gpus, tracking_dir=tmp_path)
    print(f"evaluation refused in {refused:.2f} s (data checks included), after a 1 s wait in {waited:.2f} s")
    assert refused < 30 and 1 <= waited < refused + 6
    assert not any((tmp_path / name).exists() for name in ("eval", ".eval.partial", "syn", ".syn.partial",
                                                           "mlflow.db", "mlartifacts"))
