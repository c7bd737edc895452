"""What the machine gives a frontend: how many CPUs it may use, and whether it serves a container.

Two defaults depend on it (settings/fields.py). Workers: one per CPU the process may use, which
inside a container is its cgroup CPU quota (cgroup v2 `cpu.max`, v1
`cpu.cfs_quota_us`/`cpu.cfs_period_us`) rather than the host's core count: four workers
throttled to one CPU's quota stall each other. Listen addresses: a container's server is reached
through its network interface (`docker run -p`, a Kubernetes Service), so there the defaults are
0.0.0.0. Outside a container they stay on loopback.

"A container" means our image (its Dockerfile sets `NODEREGISTRY_CONTAINER=1`) or a Kubernetes pod
(the kubelet always sets `KUBERNETES_SERVICE_HOST`), not merely "a container runtime file exists":
a development shell inside Docker has /.dockerenv too, and `make run` there must stay on loopback
(decision D32).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

CONTAINER_MARKER = "NODEREGISTRY_CONTAINER"
PROC_SELF_CGROUP = Path("/proc/self/cgroup")
CGROUP_ROOT = Path("/sys/fs/cgroup")


def in_container(environ: Mapping[str, str]) -> bool:
    """Our image (its marker variable) or any Kubernetes pod."""
    marker = environ.get(CONTAINER_MARKER, "").strip().lower()
    return marker not in ("", "0", "false", "no") or bool(environ.get("KUBERNETES_SERVICE_HOST"))


def parse_cpu_max(text: str) -> float | None:
    """cgroup v2 `cpu.max` ("150000 100000", or "max 100000"): CPUs allowed, None if unlimited."""
    quota, _, period = text.strip().partition(" ")
    if quota == "max":
        return None
    return _ratio(quota, period or "100000")


def parse_cfs_quota(quota_text: str, period_text: str) -> float | None:
    """cgroup v1 `cpu.cfs_quota_us` and `cpu.cfs_period_us`: CPUs allowed, None if unlimited."""
    return _ratio(quota_text.strip(), period_text.strip())


def _ratio(quota: str, period: str) -> float | None:
    try:
        quota_us, period_us = int(quota), int(period)
    except ValueError:
        return None
    if quota_us <= 0 or period_us <= 0:  # v1 writes -1 for "no quota"
        return None
    return quota_us / period_us


def cgroup_cpu_limit(
    proc_self_cgroup: Path = PROC_SELF_CGROUP, cgroup_root: Path = CGROUP_ROOT
) -> float | None:
    """The tightest CPU quota on this process's cgroup and its ancestors; None when there is none.

    The process's cgroup path comes from /proc/self/cgroup. Inside a container without a cgroup
    namespace that path names the host's hierarchy, which the container does not see: then only
    the mounted root (the container's own cgroup) is read.
    """
    try:
        lines = proc_self_cgroup.read_text().splitlines()
    except OSError:
        return None
    limits: list[float] = []
    for line in lines:
        hierarchy, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if hierarchy == "0" and not controllers:
            for folder in _folders(cgroup_root, path):
                limits += _read(parse_cpu_max, folder / "cpu.max")
        elif "cpu" in controllers.split(","):
            mount = cgroup_root / controllers
            mount = mount if mount.is_dir() else cgroup_root / "cpu"
            for folder in _folders(mount, path):
                limits += _read(
                    parse_cfs_quota, folder / "cpu.cfs_quota_us", folder / "cpu.cfs_period_us"
                )
    return min(limits, default=None)


def _folders(mount: Path, cgroup_path: str) -> list[Path]:
    """The process's cgroup folder and every ancestor up to the mount (the mount alone when the
    path is not visible here)."""
    folder = mount / cgroup_path.strip("/")
    if not folder.is_dir():
        return [mount]
    folders = [folder]
    while folder != mount:
        folder = folder.parent
        folders.append(folder)
    return folders


def _read(parse: Callable[..., float | None], *files: Path) -> list[float]:
    try:
        texts = [file.read_text() for file in files]
    except OSError:
        return []
    limit = parse(*texts)
    return [] if limit is None else [limit]


def worker_count(cpu_limit: float | None, cpus: int) -> int:
    """One worker per usable CPU: the quota rounded down (a worker on a fraction of a CPU is
    throttled in bursts), never more than the CPUs the process may run on, at least one."""
    if cpu_limit is None:
        return max(1, cpus)
    return max(1, min(cpus, math.floor(cpu_limit)))


@dataclass(frozen=True)
class Host:
    """The facts the settings' defaults depend on (tests make their own)."""

    in_container: bool
    cpus: int

    @classmethod
    def probe(cls, environ: Mapping[str, str]) -> Host:
        usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
        cpus = usable or os.cpu_count() or 1
        return cls(in_container(environ), worker_count(cgroup_cpu_limit(), cpus))
