"""`noderegistry serve` that cannot start says why in exactly one line on stderr and exits 1,
naming the setting to change (issue 11, problems 2, 3 and 8; decision D42). Each case runs the
installed command as a subprocess, with one worker and with a supervisor and two workers (whose
error the supervisor passes on, once)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import sys
from collections.abc import Iterator

import pytest

from tests.support.cli import environment, run_cli
from tests.support.ports import free_port

pytestmark = pytest.mark.integration
WORKERS = pytest.mark.parametrize("workers", ["1", "2"])


@contextlib.contextmanager
def listening(*, reuse_port: bool = False) -> Iterator[str]:
    """Another program listening on a loopback port (with SO_REUSEPORT: as gRPC servers do by
    default, which is what let a second registry join the port)."""
    with socket.socket() as sock:
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield f"127.0.0.1:{sock.getsockname()[1]}"


async def serve(*flags: str, log_level: str = "") -> tuple[int, str, str]:
    """Runs `noderegistry serve` with loopback ports of its own unless `flags` say otherwise."""
    defaults = {
        "--listen": f"127.0.0.1:{free_port()}",
        "--admin-listen": "127.0.0.1:0",
        "--http-listen": "127.0.0.1:0",
        "--etcd-connect-timeout-seconds": "1",
    }
    given = {flag.split("=")[0] for flag in flags if flag.startswith("--")}
    args = [*flags] + [f"{k}={v}" for k, v in defaults.items() if k not in given]
    level = ["--log-level", log_level] if log_level else []
    return await run_cli(*level, "serve", *args, timeout=60)


def assert_one_line(result: tuple[int, str, str], expected: str) -> None:
    code, out, err = result
    assert (code, out) == (1, ""), err
    assert err.count("\n") == 1 and err == f"error: {expected}\n", err


@WORKERS
async def test_a_second_serve_on_a_served_port_refuses_even_for_another_cluster(
    etcd, spawn_frontend, workers
):
    # Problem 2: the first registry keeps its port; a second one, one worker or a supervisor,
    # another cluster or the same, refuses instead of joining it with SO_REUSEPORT.
    first = await spawn_frontend(etcd.endpoint, listen=f"127.0.0.1:{free_port()}", workers=workers)
    for second_workers in ("1", "2"):
        for cluster in ("other", first.flags[first.flags.index("--cluster") + 1]):
            assert_one_line(
                await serve(
                    f"--listen={first.address}",
                    f"--etcd-endpoints={etcd.endpoint}",
                    f"--cluster={cluster}",
                    f"--workers={second_workers}",
                ),
                f"cannot listen on {first.address} (address in use): set REGISTRY_LISTEN",
            )
    assert first.process is not None and first.process.poll() is None


@WORKERS
async def test_a_grpc_port_another_program_listens_on_is_refused(etcd, workers):
    with listening(reuse_port=True) as address:
        assert_one_line(
            await serve(
                f"--listen={address}", f"--etcd-endpoints={etcd.endpoint}", "--workers", workers
            ),
            f"cannot listen on {address} (address in use): set REGISTRY_LISTEN",
        )


@WORKERS
@pytest.mark.parametrize("setting", ["admin_listen", "health_listen", "http_listen"])
async def test_an_admin_health_or_http_port_in_use_is_refused(etcd, workers, setting):
    with listening() as address:
        assert_one_line(
            await serve(
                f"--{setting.replace('_', '-')}={address}",
                f"--etcd-endpoints={etcd.endpoint}",
                "--workers",
                workers,
            ),
            f"cannot listen on {address} (address in use): set REGISTRY_{setting.upper()}",
        )


@WORKERS
async def test_unreachable_etcd_endpoints_end_in_one_line_after_the_connect_timeout(workers):
    # With two workers both fail; the supervisor says it once.
    closed = f"127.0.0.1:{free_port()}"
    code, out, err = await serve(f"--etcd-endpoints={closed}", "--workers", workers)
    assert (code, out) == (1, ""), err
    assert err.count("\n") == 1 and err.startswith(
        f"error: cannot reach etcd at {closed} within 1s"
    )
    assert err.rstrip().endswith(
        "set REGISTRY_ETCD_ENDPOINTS (or wait longer: REGISTRY_ETCD_CONNECT_TIMEOUT_SECONDS)"
    )


async def test_the_local_etcd_refuses_a_port_another_etcd_serves(etcd, tmp_path):
    # Problem 3: it used to attach to the etcd that answered on its port.
    assert_one_line(
        await serve(
            f"--embedded-etcd-port={etcd.client_port}",
            f"--embedded-etcd-dir={tmp_path / 'etcd'}",
            "--workers=1",
        ),
        f"cannot start the local etcd: 127.0.0.1:{etcd.client_port} is served by another "
        "process: set REGISTRY_EMBEDDED_ETCD_PORT (or REGISTRY_ETCD_ENDPOINTS to use that etcd)",
    )
    assert not (tmp_path / "etcd").exists()  # nothing was started


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (
            lambda d: [
                f"--tls-cert-file={d / 'garbage.pem'}",
                f"--tls-key-file={d / 'garbage.pem'}",
            ],
            "{d}/garbage.pem and {d}/garbage.pem are not a PEM certificate and its unencrypted "
            "key: set REGISTRY_TLS_CERT_FILE and REGISTRY_TLS_KEY_FILE",
        ),
        (
            lambda d: [
                f"--tls-cert-file={d / 'missing.pem'}",
                f"--tls-key-file={d / 'garbage.pem'}",
            ],
            "cannot read {d}/missing.pem (no such file or directory): set REGISTRY_TLS_CERT_FILE",
        ),
        (
            lambda d: [f"--etcd-ca-file={d / 'garbage.pem'}"],
            "{d}/garbage.pem is not a PEM CA bundle (no certificate or crl found): set "
            "REGISTRY_ETCD_CA_FILE",
        ),
        (
            lambda d: [f"--auth-tokens-file={d / 'garbage.pem'}"],
            "{d}/garbage.pem:1: expected 'name scopes token': set REGISTRY_AUTH_TOKENS_FILE",
        ),
    ],
)
async def test_a_file_that_cannot_be_used_is_refused_naming_its_setting(
    etcd, tmp_path, flags, expected
):
    (tmp_path / "garbage.pem").write_text("not-a-certificate\n")
    assert_one_line(
        await serve(*flags(tmp_path), f"--etcd-endpoints={etcd.endpoint}", "--workers=1"),
        expected.format(d=tmp_path),
    )


async def test_a_traceback_comes_only_with_log_level_debug(etcd):
    with listening() as address:
        flags = (f"--admin-listen={address}", f"--etcd-endpoints={etcd.endpoint}", "--workers=1")
        code, _, err = await serve(*flags, log_level="debug")
    assert code == 1
    assert "Traceback (most recent call last)" in err
    assert err.splitlines()[-1] == (
        f"error: cannot listen on {address} (address in use): set REGISTRY_ADMIN_LISTEN"
    )


async def test_a_worker_joins_only_a_port_its_own_supervisor_claimed(etcd):
    # A process that says it is a worker of this test process (its parent), which claimed
    # nothing: it must not set SO_REUSEPORT on the port.
    address = f"127.0.0.1:{free_port()}"
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "registry_service",
        "serve",
        f"--listen={address}",
        "--admin-listen=127.0.0.1:0",
        "--http-listen=127.0.0.1:0",
        f"--etcd-endpoints={etcd.endpoint}",
        "--workers=1",
        env=environment({"NODEREGISTRY_SUPERVISOR_PID": str(os.getpid())}),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(60):
        out, err = await process.communicate()
    assert_one_line(
        (process.returncode or 0, out.decode(), err.decode()),
        f"cannot listen on {address} (not claimed by this worker's supervisor, pid "
        f"{os.getpid()}): set REGISTRY_LISTEN",
    )


async def test_the_frontend_module_refuses_a_bad_command_line_in_one_line():
    """`python -m registry_service` (how a supervisor starts its workers, seen in `ps`)."""
    for args in (["serve", "--no-such-flag"], ["--no-such-flag"], []):
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "registry_service",
            *args,
            env=environment({}),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        async with asyncio.timeout(60):
            out, err = await process.communicate()
        text = err.decode()
        assert (process.returncode, out) == (2, b""), text
        assert text.startswith("error: python -m registry_service: ") and text.count("\n") == 1
        assert "(see 'python -m registry_service --help')" in text
