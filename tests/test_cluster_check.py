"""On a 2-node Ray cluster (a head with no CPUs, a worker node that cannot see the driver's folder), the pipeline
refuses, before any stage and without making its output folder, a sqlite MLflow store, a missing storage location
and a storage folder on the driver's disk, each naming the fix. Slow: starts a Ray cluster."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from ray_cluster import ray_cluster

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]


def _pipeline(env: dict[str, str], out: Path, *overrides: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "jobs" / "pipeline.py"), "--out", str(out), *overrides],
                          env=env, capture_output=True, text=True, timeout=300)


def test_a_multi_node_cluster_without_shared_mlflow_or_storage_is_refused_before_any_stage(tmp_path):
    driver = tmp_path / "driver"  # on the worker node: an empty tmpfs
    driver.mkdir()
    ray_tmp = tempfile.mkdtemp(prefix="rc", dir="/tmp")
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "MLFLOW_TRACKING_URI")} | {
        "RAY_TMPDIR": ray_tmp}
    with ray_cluster(env, workers=1, cpus_per_worker=1, hide=[driver], log_dir=tmp_path / "ray") as cluster:
        env |= {"RAY_ADDRESS": cluster["address"]}
        out = driver / "out"

        sqlite = _pipeline(env, out)
        assert sqlite.returncode == 2, sqlite.stdout[-2000:] + sqlite.stderr[-3000:]
        assert "Ray cluster of 2 nodes but MLflow's store is sqlite:///" in sqlite.stderr, sqlite.stderr[-3000:]
        assert "MLFLOW_TRACKING_URI" in sqlite.stderr and not out.exists()

        server = env | {"MLFLOW_TRACKING_URI": "http://127.0.0.1:9"}  # never contacted: refused before any stage
        nowhere = _pipeline(server, out)
        assert nowhere.returncode == 2 and "without a storage location" in nowhere.stderr, nowhere.stderr[-3000:]
        assert "storage=" in nowhere.stderr and not out.exists()

        if cluster["isolated"]:  # the worker node sees an empty tmpfs where the driver's folder is
            local = _pipeline(server, out, f"storage={driver / 'store'}")
            assert local.returncode == 2, local.stdout[-2000:] + local.stderr[-3000:]
            assert f"storage={driver / 'store'} is a folder that 1 of the cluster's 2 nodes cannot see" in local.stderr
            assert not out.exists() and not list((driver / "store").iterdir()), "the probe file was left"
