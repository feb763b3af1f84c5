"""Joining Ray: the cluster named by RAY_ADDRESS (set under `ray job submit`), else a local instance."""

from __future__ import annotations

import math
import os

import ray


def connect_ray(min_slots: float = 0) -> None:
    """Start a local Ray with at least min_slots CPU slots (more than the cores when needed, so Train workers
    never starve Ray Data's read tasks: two workers at 1 CPU each on 2 cores would leave the read task that feeds them
    no slot, and the job would hang), unless Ray is already up or RAY_ADDRESS is set.
    A private instance: without RAY_ADDRESS, a cluster someone else started on this machine is not joined."""
    if ray.is_initialized():
        return
    if os.environ.get("RAY_ADDRESS"):
        ray.init(log_to_driver=True)
        return
    ray.init(address="local", num_cpus=max(os.cpu_count() or 1, math.ceil(min_slots)), include_dashboard=True,
             dashboard_host="127.0.0.1", log_to_driver=True)
