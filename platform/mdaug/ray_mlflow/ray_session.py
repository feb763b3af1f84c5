"""Joining Ray: the cluster named by RAY_ADDRESS (set under `ray job submit`), else a local instance."""

from __future__ import annotations

import logging
import math
import os
import warnings

import ray

from mdaug.console import verbose
from mdaug.cpus import available_cpus


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


# Lines from inside Ray, Lightning and torch that a user of the platform cannot act on: deprecations of what those
# libraries call internally, advice about the platform's own deliberate choices (frozen judges in eval mode, Ray
# Data's progress bars off, Ray's default token authentication, MLflow creating its store's tables and checking an
# input example). Shown with MDAUG_VERBOSE=1.
LIBRARY_WARNINGS = (r"`isinstance\(treespec, LeafSpec\)` is deprecated",
                    r"`ExecutionOptions\.exclude_resources` is deprecated",
                    r"torch\.distributed\.nn\.functional\.all_gather is deprecated",
                    r"Found \d+ module\(s\) in eval mode at the start of training")
LIBRARY_LOGGERS = {"ray.data._internal.progress": logging.ERROR,
                   "ray._private.authentication.authentication_token_setup": logging.ERROR,
                   "mlflow.store.db.utils": logging.WARNING, "mlflow.pyfunc": logging.WARNING}


def quiet_library_noise(verbose_console: bool) -> None:
    """In this process: LIBRARY_WARNINGS ignored and LIBRARY_LOGGERS at their levels, unless `verbose_console`."""
    if verbose_console:
        return
    for message in LIBRARY_WARNINGS:
        warnings.filterwarnings("ignore", message=message)
    for name, level in LIBRARY_LOGGERS.items():
        logging.getLogger(name).setLevel(level)


def quiet_worker() -> None:
    """Ray's worker_process_setup_hook of a local instance without MDAUG_VERBOSE=1."""
    quiet_library_noise(False)


def connect_ray(min_slots: float = 0) -> None:
    """Start a local Ray with at least min_slots CPU slots (more than the cores when needed, so Train workers
    never starve Ray Data's read tasks: two workers at 1 CPU each on 2 cores would leave the read task that feeds them
    no slot, and the job would hang), unless Ray is already up or RAY_ADDRESS is set.
    A private instance: without RAY_ADDRESS, a cluster someone else started on this machine is not joined."""
    quiet_library_noise(verbose())
    if ray.is_initialized():
        return
    if os.environ.get("RAY_ADDRESS"):
        ray.init(log_to_driver=True, logging_config=ray_logging())
        return
    # every process of the local instance (Ray Train's controller and Data's actors too) starts quiet
    hook = None if verbose() else {"worker_process_setup_hook": f"{__name__}.quiet_worker"}
    ray.init(address="local", num_cpus=max(available_cpus(), math.ceil(min_slots)), include_dashboard=True,
             dashboard_host="127.0.0.1", log_to_driver=True, logging_config=ray_logging(), runtime_env=hook)
