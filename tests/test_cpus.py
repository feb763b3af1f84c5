"""The CPUs a process may use: a cgroup quota caps the affinity mask (v2 and v1 layouts), no quota leaves it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mdaug.cpus import available_cpus, cgroup_quota

MASK = len(os.sched_getaffinity(0))


def _write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


@pytest.mark.parametrize(("files", "quota"), [
    ({"cpu.max": "150000 100000\n"}, 1.5),
    ({"cpu.max": "max 100000\n"}, None),
    ({"cpu/cpu.cfs_quota_us": "100000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 1.0),
    ({"cpu,cpuacct/cpu.cfs_quota_us": "-1\n", "cpu,cpuacct/cpu.cfs_period_us": "100000\n"}, None),
    ({}, None),
    ({"cpu.max": "garbage"}, None),
])
def test_the_cgroup_quota_is_read_from_either_layout(tmp_path, files, quota):
    assert cgroup_quota(_write(tmp_path, files)) == quota


def test_a_quota_caps_the_affinity_mask_and_rounds_up(tmp_path):
    assert available_cpus(_write(tmp_path / "none", {})) == MASK
    assert available_cpus(_write(tmp_path / "half", {"cpu.max": "50000 100000"})) == 1  # ≥ 1, rounded up
    assert available_cpus(_write(tmp_path / "many", {"cpu.max": f"{(MASK + 8) * 100000} 100000"})) == MASK
    if MASK >= 2:
        assert available_cpus(_write(tmp_path / "one", {"cpu.max": "100000 100000"})) == 1
