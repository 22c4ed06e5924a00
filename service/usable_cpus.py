"""How many CPUs this process may really use: its affinity mask, capped by the cgroup v2
`cpu.max` quotas of its cgroup and every ancestor (a container's CPU limit), so that
`auscult serve` starts one worker per usable core and not one per core of the host."""

from __future__ import annotations

import math
import os
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
CGROUP_MEMBERSHIP = Path("/proc/self/cgroup")


def _quota_cpus(cpu_max: Path) -> float | None:
    """CPUs one `cpu.max` file allows ('QUOTA PERIOD' in microseconds); None for 'max', a
    missing file or one that cannot be read or makes no sense (a quota of 0)."""
    try:
        fields = cpu_max.read_text(encoding="ascii").split()
        quota, period = fields[0], int(fields[1])
    except (OSError, ValueError, IndexError):
        return None
    if not quota.isdigit() or int(quota) == 0 or period <= 0:  # 'max': no limit
        return None
    return int(quota) / period


def cgroup_cpu_limit(
    root: Path = CGROUP_ROOT, membership: Path = CGROUP_MEMBERSHIP
) -> float | None:
    """The tightest cgroup v2 CPU quota over this process's cgroup and its ancestors, in CPUs;
    None when there is none (no limit, or no cgroup v2 hierarchy)."""
    try:
        lines = membership.read_text(encoding="utf-8").splitlines()
    except OSError:
        return None
    # cgroup v2 is the line '0::/path'; v1 controllers have other numbers.
    own = next((line[3:] for line in lines if line.startswith("0::")), None)
    if own is None:
        return None
    folder = root / own.strip().lstrip("/")
    limits = []
    while True:
        limit = _quota_cpus(folder / "cpu.max")
        if limit is not None:
            limits.append(limit)
        if folder == root or root not in folder.parents:
            break
        folder = folder.parent
    return min(limits, default=None)


def usable_cpus(root: Path = CGROUP_ROOT, membership: Path = CGROUP_MEMBERSHIP) -> int:
    """CPUs in this thread's affinity mask, capped by the cgroup quota rounded up (a quota of
    1.5 CPUs keeps two cores busy part of the time)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        cpus = os.cpu_count() or 1
    quota = cgroup_cpu_limit(root, membership)
    if quota is not None:
        cpus = min(cpus, math.ceil(quota))
    return cpus
