"""The CPUs this process may use: its affinity mask, capped by a cgroup CPU quota (a container's `--cpus`, a
Kubernetes CPU limit). `os.cpu_count()` counts the host's cores: on a machine with many cores and a 2-CPU quota,
a local Ray with that many slots, or torch with that many threads, is throttled into running several times slower."""

from __future__ import annotations

import math
import os
from pathlib import Path

CGROUP = Path("/sys/fs/cgroup")


def cgroup_quota(root: Path = CGROUP) -> float | None:
    """CPUs the cgroup quota allows (cgroup v2 `cpu.max`, else v1 `cpu.cfs_quota_us` / `cpu.cfs_period_us`), or
    None where there is no quota or no cgroup file to read."""
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    for v1 in (root / "cpu", root / "cpu,cpuacct"):
        try:
            quota_us = int((v1 / "cpu.cfs_quota_us").read_text())
            period_us = int((v1 / "cpu.cfs_period_us").read_text())
        except (OSError, ValueError):
            continue
        return None if quota_us <= 0 or period_us <= 0 else quota_us / period_us
    return None


def available_cpus(root: Path = CGROUP) -> int:
    """Whole CPUs this process may use: the affinity mask's size, capped by the cgroup quota (rounded up), ≥ 1."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS has no affinity mask
        cpus = os.cpu_count() or 1
    quota = cgroup_quota(root)
    return max(1, min(cpus, math.ceil(quota)) if quota is not None else cpus)
