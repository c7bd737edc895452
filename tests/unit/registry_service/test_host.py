"""CPU quota and container detection, on fake /proc and /sys/fs/cgroup trees."""

from __future__ import annotations

from pathlib import Path

import pytest

from registry_service.host import (
    cgroup_cpu_limit,
    in_container,
    parse_cfs_quota,
    parse_cpu_max,
    worker_count,
)


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.mark.parametrize(
    ("text", "cpus"),
    [("max 100000\n", None), ("150000 100000\n", 1.5), ("400000 100000", 4.0), ("max", None)],
)
def test_cgroup_v2_cpu_max_parses_into_cpus(text, cpus):
    assert parse_cpu_max(text) == cpus


@pytest.mark.parametrize(
    ("quota", "period", "cpus"),
    [("-1\n", "100000\n", None), ("200000\n", "100000\n", 2.0), ("50000", "100000", 0.5)],
)
def test_cgroup_v1_cfs_quota_parses_into_cpus(quota, period, cpus):
    assert parse_cfs_quota(quota, period) == cpus


def test_a_v2_container_reads_its_own_cpu_max(tmp_path):
    write(tmp_path / "proc" / "self" / "cgroup", "0::/\n")
    write(tmp_path / "cgroup" / "cpu.max", "200000 100000\n")
    assert cgroup_cpu_limit(tmp_path / "proc" / "self" / "cgroup", tmp_path / "cgroup") == 2.0


def test_a_v2_limit_on_an_ancestor_cgroup_counts(tmp_path):
    write(tmp_path / "proc", "0::/kubepods/pod1/ctr\n")
    root = tmp_path / "cgroup"
    write(root / "kubepods" / "pod1" / "ctr" / "cpu.max", "max 100000\n")
    write(root / "kubepods" / "pod1" / "cpu.max", "300000 100000\n")
    write(root / "kubepods" / "cpu.max", "800000 100000\n")
    assert cgroup_cpu_limit(tmp_path / "proc", root) == 3.0


def test_a_v1_container_whose_host_path_is_hidden_reads_the_mount(tmp_path):
    # Without a cgroup namespace /proc/self/cgroup names the host's path; the container's own
    # cgroup is mounted at the root.
    write(tmp_path / "proc", "12:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n0::/\n")
    mount = tmp_path / "cgroup" / "cpu,cpuacct"
    write(mount / "cpu.cfs_quota_us", "150000\n")
    write(mount / "cpu.cfs_period_us", "100000\n")
    assert cgroup_cpu_limit(tmp_path / "proc", tmp_path / "cgroup") == 1.5


def test_no_quota_anywhere_means_no_limit(tmp_path):
    write(tmp_path / "proc", "1:cpu:/\n0::/\n")
    write(tmp_path / "cgroup" / "cpu" / "cpu.cfs_quota_us", "-1\n")
    write(tmp_path / "cgroup" / "cpu" / "cpu.cfs_period_us", "100000\n")
    assert cgroup_cpu_limit(tmp_path / "proc", tmp_path / "cgroup") is None
    assert cgroup_cpu_limit(tmp_path / "missing", tmp_path / "cgroup") is None


@pytest.mark.parametrize(
    ("limit", "cpus", "workers"),
    [(None, 8, 8), (2.0, 8, 2), (1.5, 8, 1), (0.5, 8, 1), (16.0, 4, 4), (None, 0, 1)],
)
def test_workers_follow_the_quota_rounded_down_within_the_cpus(limit, cpus, workers):
    assert worker_count(limit, cpus) == workers


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, False),
        ({"NODEREGISTRY_CONTAINER": "1"}, True),
        ({"NODEREGISTRY_CONTAINER": "0"}, False),
        ({"KUBERNETES_SERVICE_HOST": "10.96.0.1"}, True),
        ({"KUBERNETES_SERVICE_HOST": ""}, False),
    ],
)
def test_a_container_is_our_image_or_a_kubernetes_pod(environ, expected):
    assert in_container(environ) is expected
