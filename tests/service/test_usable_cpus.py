"""Usable CPUs: the affinity mask, capped by the tightest cgroup v2 `cpu.max` quota of the
process's cgroup and its ancestors (folders and files written here, in a temporary tree)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from service.usable_cpus import cgroup_cpu_limit, usable_cpus


def _hierarchy(tmp_path: Path, cpu_max: dict[str, str], own: str = "/kubepods/pod1/app") -> Path:
    """A cgroup v2 tree under tmp_path/cgroup with the given cpu.max files (relative folder ->
    contents) and a membership file naming `own`; returns the membership file."""
    root = tmp_path / "cgroup"
    (root / own.lstrip("/")).mkdir(parents=True)
    for folder, text in cpu_max.items():
        (root / folder / "cpu.max").write_text(text)
    membership = tmp_path / "cgroup-membership"
    membership.write_text(f"12:memory:/something\n0::{own}\n")
    return membership


def test_the_tightest_quota_of_the_cgroup_and_its_ancestors_wins(tmp_path: Path) -> None:
    membership = _hierarchy(
        tmp_path,
        {
            "kubepods": "400000 100000\n",  # 4 CPUs
            "kubepods/pod1": "150000 100000\n",  # 1.5 CPUs
            "kubepods/pod1/app": "max 100000\n",  # no limit of its own
        },
    )
    assert cgroup_cpu_limit(tmp_path / "cgroup", membership) == 1.5
    # Rounded up: a 1.5-CPU quota keeps two cores busy part of the time.
    assert usable_cpus(tmp_path / "cgroup", membership) == min(2, len(os.sched_getaffinity(0)))


def test_no_quota_or_no_cgroup_v2_leaves_the_affinity_mask(tmp_path: Path) -> None:
    unlimited = _hierarchy(tmp_path, {"kubepods/pod1/app": "max 100000\n"})
    assert cgroup_cpu_limit(tmp_path / "cgroup", unlimited) is None
    v1_only = tmp_path / "v1-membership"
    v1_only.write_text("4:cpu,cpuacct:/docker/abc\n")
    assert cgroup_cpu_limit(tmp_path / "cgroup", v1_only) is None
    assert cgroup_cpu_limit(tmp_path / "cgroup", tmp_path / "missing") is None
    nonsense = _hierarchy(tmp_path / "nonsense", {"kubepods/pod1/app": "0 100000\n"})
    assert cgroup_cpu_limit(tmp_path / "nonsense" / "cgroup", nonsense) is None
    affinity = len(os.sched_getaffinity(0))
    assert usable_cpus(tmp_path / "cgroup", unlimited) == affinity


def test_a_quota_below_one_cpu_still_gives_one(tmp_path: Path) -> None:
    membership = _hierarchy(tmp_path, {"kubepods/pod1/app": "20000 100000\n"})
    assert cgroup_cpu_limit(tmp_path / "cgroup", membership) == pytest.approx(0.2)
    assert usable_cpus(tmp_path / "cgroup", membership) == 1


def test_the_affinity_mask_caps_the_count(tmp_path: Path) -> None:
    membership = _hierarchy(tmp_path, {"kubepods": "6400000 100000\n"})  # 64 CPUs
    before = os.sched_getaffinity(0)
    try:
        # This thread only: pid 0 is the calling thread, restored below.
        os.sched_setaffinity(0, {min(before)})
        assert usable_cpus(tmp_path / "cgroup", membership) == 1
    finally:
        os.sched_setaffinity(0, before)
    assert usable_cpus(tmp_path / "cgroup", membership) == len(before)
