"""Joining Ray: the cluster named by RAY_ADDRESS (set under `ray job submit`), else a local instance."""

from __future__ import annotations

import logging
import math
import os

import ray

from mdaug.cpus import available_cpus

VERBOSE = "MDAUG_VERBOSE"  # =1: Ray's own INFO logs on the console (Train reports and checkpoints, Data's plans)


def verbose() -> bool:
    return os.environ.get(VERBOSE, "") == "1"


def ray_logging() -> ray.LoggingConfig:
    """Ray's loggers in every process of the job (driver, Train workers and controller, Data tasks): WARNING, so
    the console holds the platform's lines, errors and warnings; INFO with MDAUG_VERBOSE=1."""
    level = log_level()
    os.environ.setdefault("RAY_DATA_LOG_LEVEL", level)  # Ray Data's own setting (read by this machine's workers)
    for name in ("ray.train", "ray.data", "ray.tune"):  # the driver's own, configured before ray.init
        logging.getLogger(name).setLevel(level)
    return ray.LoggingConfig(log_level=level)


def log_level() -> str:
    return "INFO" if verbose() else "WARNING"


def connect_ray(min_slots: float = 0) -> None:
    """Start a local Ray with at least min_slots CPU slots (more than the cores when needed, so Train workers
    never starve Ray Data's read tasks: two workers at 1 CPU each on 2 cores would leave the read task that feeds them
    no slot, and the job would hang), unless Ray is already up or RAY_ADDRESS is set.
    A private instance: without RAY_ADDRESS, a cluster someone else started on this machine is not joined."""
    if ray.is_initialized():
        return
    if os.environ.get("RAY_ADDRESS"):
        ray.init(log_to_driver=True, logging_config=ray_logging())
        return
    ray.init(address="local", num_cpus=max(available_cpus(), math.ceil(min_slots)), include_dashboard=True,
             dashboard_host="127.0.0.1", log_to_driver=True, logging_config=ray_logging())
