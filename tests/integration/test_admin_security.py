"""The admin port has the gRPC port's security (docs/design.md §9): bearer tokens with admin scopes,
TLS and mTLS; with any of it on, only /healthz and /readyz answer without credentials."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest

from tests.support.certs import client_contexts, mtls_settings, tls_flags, write_certificates
from tests.support.cli import run_cli
from tests.support.http import get, put

pytestmark = pytest.mark.integration

TOKENS = {
    "ops": ("admin", "ops-1"),
    "reader": ("admin:read", "reader-2"),
    "writer": ("admin:write", "writer-3"),
    "prometheus": ("metrics", "prom-4"),
    "fleet": ("register,watch", "fleet-5"),
}
READS = (
    "/metrics",
    "/admin/nodes",
    "/admin/subscribers",
    "/admin/evictor",
    "/admin/suspects",
    "/admin/audit",
    "/admin/push",
    "/admin/frontends",
    "/admin/convergence",
    "/admin/nodes/dc1/data/n1",
)


def write_tokens(directory: Path) -> str:
    path = directory / "tokens"
    path.write_text(
        "".join(f"{name} {scopes} {token}\n" for name, (scopes, token) in TOKENS.items())
    )
    return str(path)


async def status(url: str, token: str = "") -> int:
    return (await get(url, token))[0]


@pytest.fixture
async def guarded(tmp_path, start_frontend) -> str:
    frontend = await start_frontend(auth_tokens_file=write_tokens(tmp_path), admin_token="single")
    return f"http://127.0.0.1:{frontend.admin.port}"


async def test_with_tokens_no_admin_read_answers_without_one(guarded):
    for path in ("/healthz", "/readyz"):  # probes cannot send tokens
        assert await status(guarded + path) == 200, path
    for path in READS:
        assert await status(guarded + path) == 401, path
        assert await status(guarded + path, "wrong") == 401, path
        assert await status(guarded + path, "fleet-5") == 403, path  # gRPC scopes only
        for allowed in ("ops-1", "reader-2", "single"):
            assert await status(guarded + path, allowed) in (200, 404), (path, allowed)
    assert await status(guarded + "/metrics", "prom-4") == 200
    assert await status(guarded + "/admin/nodes", "prom-4") == 403
    assert await status(guarded + "/admin/nodes", "writer-3") == 403


async def test_writes_need_the_admin_write_scope(guarded):
    off = {"enabled": False}
    assert (await put(guarded + "/admin/push", off))[0] == 401
    assert (await put(guarded + "/admin/push", off, "reader-2"))[0] == 403
    code, body = await put(guarded + "/admin/push", off, "writer-3")
    assert code == 200 and body["changed_by"] == "token:writer"
    code, body = await put(guarded + "/admin/push", {"enabled": True}, "single")
    assert code == 200 and body["changed_by"] == "token:admin_token"


async def test_the_cli_without_a_token_says_which_flags_give_one(guarded):
    code, _, err = await run_cli("admin", "frontends", "--admin-endpoints", guarded)
    assert code == 1
    assert err.startswith("error: UNAUTHENTICATED: no token: /admin/frontends needs Authorization")
    assert "(give a token with --token-file, --token or NODEREGISTRY_TOKEN)" in err
    assert err.count("\n") == 1


async def test_a_supervisor_checks_tokens_for_all_its_workers(tmp_path, etcd, spawn_frontend):
    supervisor = await spawn_frontend(
        etcd.endpoint, workers=2, auth_tokens_file=write_tokens(tmp_path)
    )
    host = supervisor.ready_line.split("admin ")[1].rstrip(")\n")
    assert await status(host + "/readyz") == 200
    for path in ("/metrics", "/admin/subscribers", "/admin/nodes", "/admin/evictor"):
        assert await status(host + path) == 401, path
        assert await status(host + path, "reader-2") == 200, path
    assert (await put(host + "/admin/push", {"enabled": False}, "reader-2"))[0] == 403
    code, body = await put(host + "/admin/push", {"enabled": False}, "ops-1")
    assert code == 200 and body["changed_by"] == "token:ops"  # the identity passed on
    assert (await put(host + "/admin/push", {"enabled": True}, "ops-1"))[0] == 200


async def test_the_admin_port_has_the_grpc_ports_tls_and_mtls(tmp_path, start_frontend):
    _, files = write_certificates(tmp_path, ("127.0.0.1",), "alice")
    frontend = await start_frontend(**mtls_settings(files))
    base = f"https://127.0.0.1:{frontend.admin.port}"
    anonymous, with_certificate = client_contexts(files)
    async with aiohttp.ClientSession() as session:
        for path, context, expected in (
            ("/healthz", anonymous, 200),
            ("/readyz", anonymous, 200),
            ("/admin/nodes", anonymous, 401),
            ("/metrics", anonymous, 401),
            ("/admin/nodes", with_certificate, 200),
        ):
            async with session.get(base + path, ssl=context) as response:
                assert response.status == expected, path
        with pytest.raises(aiohttp.ClientError):  # plaintext is not spoken
            await session.get(f"http://127.0.0.1:{frontend.admin.port}/healthz")

    tls = tls_flags(files)
    endpoint = ("--admin-endpoints", f"127.0.0.1:{frontend.admin.port}")  # https: --cacert is set
    code, out, err = await run_cli("admin", "push", "off", *endpoint, *tls)
    assert code == 0, err
    assert "pushes OFF" in out and "changed by cert:alice" in out
    # The convergence fan-out reaches the frontend's own admin port over mTLS too.
    code, out, err = await run_cli("admin", "convergence", *endpoint, *tls)
    assert code == 0 and "UNREACHABLE" not in out, out + err
    code, _, err = await run_cli("admin", "frontends", *endpoint, "--cacert", files["ca.pem"])
    assert code == 1 and "client certificate" in err
