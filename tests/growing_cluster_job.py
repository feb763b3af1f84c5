"""check_resources against a cluster that grows while it waits (ray.cluster_utils.Cluster: a 1-CPU head, then a
4-CPU node), then against shapes its totals hold but its nodes cannot place, as a process of its own: a driver
joins one Ray at a time and the test session holds ray_local.
python tests/growing_cluster_job.py prints one JSON line: per scenario, the error (or null), the seconds the check
took and what the autoscaler was asked for during and after the wait."""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import replace

import ray
from ray.autoscaler._private.constants import AUTOSCALER_RESOURCE_REQUEST_CHANNEL
from ray.cluster_utils import Cluster
from ray.experimental.internal_kv import _internal_kv_get
from ray.util import placement_group_table

from mdaug.ray_mlflow import preflight
from mdaug.ray_mlflow.config import TrainJobConfig
from mdaug.ray_mlflow.preflight import check_resources

NEEDS_3_CPUS = TrainJobConfig(workers=2, cpus_per_worker=1.5)


def requested() -> list | None:
    """The standing request_resources bundles (the v1 autoscaler's channel in the GCS key-value store)."""
    raw = _internal_kv_get(AUTOSCALER_RESOURCE_REQUEST_CHANNEL)
    return json.loads(raw) if raw else None


def timed_check(cfg: TrainJobConfig, into: dict) -> None:
    t0 = time.monotonic()
    try:
        check_resources(cfg)
        into["error"] = None
    except ValueError as err:
        into["error"] = str(err)
    into["seconds"] = round(time.monotonic() - t0, 2)


def main() -> None:
    os.environ["RAY_AUTH_MODE"] = "disabled"
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    ray.init(address=cluster.address, log_to_driver=False)
    try:
        refused: dict = {}
        timed_check(replace(NEEDS_3_CPUS, resource_wait_s=2.0), refused)
        refused["request_after"] = requested()
        grown: dict = {}
        check = threading.Thread(target=timed_check, args=(replace(NEEDS_3_CPUS, resource_wait_s=60.0), grown))
        check.start()
        time.sleep(1.0)
        grown["request_during"] = requested()
        cluster.add_node(num_cpus=4)
        check.join()
        grown["request_after"] = requested()
        grown["cluster_cpus"] = ray.cluster_resources().get("CPU")
        # 5 CPUs in all, on nodes of 1 and 4: enough on paper, yet no node holds 4.5 (refused at once), and the
        # 4-CPU node holds two bundles of 1.5, not three (refused after the placement group's wait)
        preflight.PLACE_S = 2.0
        split, packed, fits = {}, {}, {}
        timed_check(TrainJobConfig(workers=1, cpus_per_worker=4.5), split)
        timed_check(TrainJobConfig(workers=3, cpus_per_worker=1.5), packed)
        timed_check(TrainJobConfig(workers=2, cpus_per_worker=2.0), fits)
        grown["placement_groups_left"] = sum(pg["state"] != "REMOVED" for pg in placement_group_table().values())
    finally:
        ray.shutdown()
        cluster.shutdown()
    print(json.dumps({"refused": refused, "grown": grown, "split": split, "packed": packed, "fits": fits}))


if __name__ == "__main__":
    main()
