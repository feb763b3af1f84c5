"""The resource pre-flight against a real cluster that grows (tests/growing_cluster_job.py, in a process of its own
with its own Ray temp folder): it asks the autoscaler for the workers' bundles, passes once a node with enough CPUs
joins, refuses with a clear error after the configured wait, and withdraws its request either way."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
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
    assert refused["error"].startswith("2 workers × 1.5 CPU need 3 CPUs; the cluster has 1 after waiting 2 s")
    assert "resource_wait_s=SECONDS (now 2)" in refused["error"] and "Lower workers or cpus_per_worker" in \
        refused["error"]
    assert 2.0 <= refused["seconds"] < 4.0
    assert grown["request_during"] == [{"CPU": 1.5}, {"CPU": 1.5}]  # one bundle per worker
    assert grown["error"] is None and 1.0 <= grown["seconds"] < 30 and grown["cluster_cpus"] == 5
    assert refused["request_after"] == grown["request_after"] == []  # withdrawn: nodes may scale down again
    assert "pre-flight: the cluster lacks 2 CPU; asked the autoscaler for 2 × {'CPU': 1.5}" in run.stdout
