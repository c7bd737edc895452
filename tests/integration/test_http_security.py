"""The HTTP API port has the gRPC port's security (docs/design.md §11): the same bearer tokens and
scopes (`watch` for node reads and the watch, `admin:read` for the audit and cluster views), the
same TLS and mTLS; the console's files and the OpenAPI document hold no data and need nothing."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest

from tests.support.certs import client_contexts, mtls_settings, write_certificates
from tests.support.http_api import EventStream, api_url, get

pytestmark = pytest.mark.integration

TOKENS = {
    "fleet": ("register", "fleet-1"),
    "reader": ("watch", "reader-2"),
    "auditor": ("watch,admin:read", "auditor-3"),
}
WATCH_PATHS = ("/v1/nodes", "/v1/nodes?type=data&index=1&wait=1ms", "/v1/nodes/dc1/data/n1")
ADMIN_READ_PATHS = ("/v1/audit/dc1/data/n1", "/v1/cluster/suspects", "/v1/cluster/convergence")
OPEN_PATHS = ("/healthz", "/readyz", "/v1/openapi.json", "/ui/", "/ui/console.js")


def write_tokens(directory: Path) -> str:
    path = directory / "tokens"
    path.write_text("".join(f"{name} {s} {t}\n" for name, (s, t) in TOKENS.items()))
    return str(path)


@pytest.fixture
async def guarded(tmp_path, start_frontend) -> str:
    frontend = await start_frontend(auth_tokens_file=write_tokens(tmp_path), admin_token="single")
    return api_url(frontend)


async def test_without_a_token_only_the_probes_the_console_and_the_document_answer(guarded):
    for path in OPEN_PATHS:
        assert (await get(guarded + path)).status == 200, path
    for path in (*WATCH_PATHS, *ADMIN_READ_PATHS):
        answer = await get(guarded + path)
        assert answer.status == 401, path
        assert answer.body["error"]["code"] == "UNAUTHENTICATED"
        assert "needs Authorization: Bearer <token>" in answer.body["error"]["message"]
    stream = await EventStream.open(guarded + "/v1/watch")
    assert stream.status == 401 and stream.error["error"]["code"] == "UNAUTHENTICATED"


async def test_node_reads_need_the_watch_scope_and_operator_views_admin_read(guarded):
    for path in WATCH_PATHS:
        refused = await get(guarded + path, "fleet-1")
        assert refused.status == 403, path
        assert refused.body["error"] == {
            "code": "PERMISSION_DENIED",
            "message": "token 'fleet' lacks the 'watch' scope this needs",
        }
        assert (await get(guarded + path, "reader-2")).status in (200, 404), path
    for path in ADMIN_READ_PATHS:
        refused = await get(guarded + path, "reader-2")
        assert refused.status == 403, path
        assert "lacks the 'admin:read' scope" in refused.body["error"]["message"]
        for token in ("auditor-3", "single"):  # the admin token may do everything
            assert (await get(guarded + path, token)).status == 200, (path, token)
    refused_stream = await EventStream.open(guarded + "/v1/watch", token="fleet-1")
    assert refused_stream.status == 403
    stream = await EventStream.open(guarded + "/v1/watch", token="reader-2")
    try:
        assert (await stream.next_change()).name == "snapshot"
    finally:
        await stream.close()


async def test_the_http_port_has_the_grpc_ports_tls_and_mtls(tmp_path, start_frontend):
    _, files = write_certificates(tmp_path, ("127.0.0.1",), "alice")
    frontend = await start_frontend(**mtls_settings(files))
    base = f"https://127.0.0.1:{frontend.api.port}"
    anonymous, with_certificate = client_contexts(files)
    for path, context, expected in (
        ("/healthz", anonymous, 200),
        ("/ui/", anonymous, 200),
        ("/v1/nodes", anonymous, 401),
        ("/v1/nodes", with_certificate, 200),
        ("/v1/cluster/suspects", with_certificate, 200),
    ):
        assert (await get(base + path, ssl_context=context)).status == expected, path
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.ClientError):  # plaintext is not spoken
            await session.get(f"http://127.0.0.1:{frontend.api.port}/healthz")
