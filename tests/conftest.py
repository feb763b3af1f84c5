"""Shared fixtures. Ray runs without auth tokens in tests (see ../shared/STACK.md)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ["RAY_AUTH_MODE"] = "disabled"
os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")


@pytest.fixture(scope="session")
def small_sim(tmp_path_factory) -> Path:
    """31 persons × 8 images at 32² — a quick data set for data-layer tests."""
    from mdaug.sim import SimConfig, simulate_dataset

    root = tmp_path_factory.mktemp("sim") / "data"
    simulate_dataset(root, SimConfig(per_person=8, size=32), progress=False)
    return root


@pytest.fixture(scope="session")
def ray_local():
    """A local Ray with more CPU slots than cores, so Data tasks never starve (STACK.md 2-core hang)."""
    import ray

    ray.init(num_cpus=4, include_dashboard=True, dashboard_host="127.0.0.1", log_to_driver=False,
             ignore_reinit_error=True)
    yield ray
    ray.shutdown()
