"""cluster.yaml passes the checks `ray up` runs first: Ray's prepare_config + validate_config against the
bundled schema (offline, no AWS credentials), and keeps its promises: no public ports, pinned installs."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

REPO = Path(__file__).resolve().parents[1]


def test_cluster_yaml_validates_with_rays_schema():
    raw = yaml.safe_load((REPO / "cluster.yaml").read_text())
    config = prepare_config(raw)
    validate_config(config)
    nodes = config["available_node_types"]
    assert config["provider"]["type"] == "aws" and config["head_node_type"] == "head"
    assert nodes["gpu_worker"]["resources"]["GPU"] == 1 and nodes["gpu_worker"]["max_workers"] >= 1
    assert nodes["gpu_worker"]["min_workers"] <= nodes["gpu_worker"]["max_workers"]
    head = " ".join(config["head_start_ray_commands"] + config["head_setup_commands"])
    assert "--dashboard-host=127.0.0.1" in head and "0.0.0.0" not in head and "mlflow server" in head
    setup = " ".join(config["setup_commands"])
    assert "torch==2.13.0" in setup and "pip install -e /home/ubuntu/mdaug" in setup
    assert "s3://YOUR-BUCKET" in head  # the documented shared-storage placeholder


def test_a_broken_cluster_yaml_is_refused():
    raw = yaml.safe_load((REPO / "cluster.yaml").read_text())
    raw["available_node_types"]["gpu_worker"]["min_workers"] = "many"
    with pytest.raises(Exception, match="many"):
        validate_config(prepare_config(raw))
