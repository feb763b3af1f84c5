"""On a Ray cluster of more than one node, what every node must reach before any stage does work: an MLflow server
(a sqlite file on the driver's disk is another, empty store on each worker node) and a storage location (the
output folder alone is on the driver's disk). The storage is probed: a file the driver writes there is looked for
by a task on every node."""

from __future__ import annotations

import functools
import os
import secrets
from pathlib import Path

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from mdaug.storage import absolute, delete_file, exists, is_uri, join, write_text

PROBE_TIMEOUT_S = 120.0


def alive_nodes() -> list[str]:
    return [n["NodeID"] for n in ray.nodes() if n["Alive"]]


@functools.cache  # once per process and arguments: the DiTs of one pipeline (same storage, folder, stage) probe
# once; each other training stage probes its own storage prefix again
def check_shared(storage: str, out: Path, what: str = "the pipeline") -> None:
    """With ≥ 2 nodes in the connected Ray cluster: a ValueError naming the fix unless MLflow is a server and
    `storage` is a location every node sees. One node: nothing to check. Writes nothing but the probe."""
    nodes = alive_nodes()
    if len(nodes) < 2:
        return
    tracking_uri = os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{out.resolve() / 'mlflow.db'}"
    if not tracking_uri.startswith(("http://", "https://", "databricks")):
        raise ValueError(f"{what} runs on a Ray cluster of {len(nodes)} nodes but MLflow's store is {tracking_uri}: "
                         "workers on other nodes would log into a store of their own disk. Set MLFLOW_TRACKING_URI "
                         "to an MLflow server every node reaches (http://HOST:5000; README, Run on a cluster)")
    if not storage:
        raise ValueError(f"{what} runs on a Ray cluster of {len(nodes)} nodes without a storage location: workers "
                         "on other nodes cannot read the output folder on the driver's disk. Set storage= to "
                         "s3://BUCKET/PREFIX, gs://…, or a folder every node mounts (README, Run on a cluster)")
    probe = join(absolute(storage), f".mdaug-probe-{secrets.token_hex(6)}")
    write_text(probe, "every node must see this file")
    try:
        sees = ray.remote(num_cpus=0)(exists)
        refs = [sees.options(scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False)).remote(probe)
                for node in nodes]
        seen = ray.get(refs, timeout=PROBE_TIMEOUT_S)
    finally:
        delete_file(probe)
    blind = [node[:12] for node, ok in zip(nodes, seen, strict=True) if not ok]
    if blind:
        kind = "a URI" if is_uri(storage) else "a folder"
        raise ValueError(f"storage={storage} is {kind} that {len(blind)} of the cluster's {len(nodes)} nodes cannot "
                         f"see (nodes {', '.join(blind)}: a file written there from the driver is not there): use "
                         "a location every node reaches (s3://…, or a folder every node mounts at the same path), "
                         "with its credentials on every node")
