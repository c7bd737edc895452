"""The operator's routes on the HTTP API port (/v1/cluster/...), which the console acts through:
the admin port's own handlers, audited the same way, described by the OpenAPI document; a write
always needs credentials there, even on a registry without tokens (issue 26)."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest
from noderegistry.v1 import registry_pb2 as pb
from openapi_core import OpenAPI
from openapi_core.testing import MockRequest, MockResponse

from tests.support.api import node, register
from tests.support.http_api import ONE_EVICTION_BUDGET, Answer, api_url, get
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration

TOKENS = "reader admin:read reader-1\nops admin ops-2\nfleet register fleet-3\n"
FLEET = {"metadata": (("authorization", "Bearer fleet-3"),)}


async def send(method: str, url: str, body: Any, token: str = "") -> Answer:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, url, json=body, headers=headers) as response,
    ):
        return Answer(response.status, dict(response.headers), await response.json())


def check(openapi: OpenAPI, method: str, url: str, body: Any, answer: Answer, token: str) -> None:
    """The request and its answer, as the served document describes them."""
    parts = urlsplit(url)
    request = MockRequest(
        f"{parts.scheme}://{parts.netloc}",
        method.lower(),
        parts.path,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        data=json.dumps(body).encode(),
        content_type="application/json",
    )
    openapi.validate_request(request)
    response = MockResponse(
        json.dumps(answer.body).encode(), answer.status, answer.headers, "application/json"
    )
    openapi.validate_response(request, response)


async def test_without_tokens_reads_answer_and_writes_need_a_token(start_frontend, connect):
    frontend = await start_frontend()
    await register(connect(frontend), node("n1"))
    base = api_url(frontend)
    frontends = await get(f"{base}/v1/cluster/frontends")
    assert frontends.status == 200
    assert [f["id"] for f in frontends.body["frontends"]] == [frontend.frontend_id]
    refused = await send("POST", f"{base}/v1/cluster/nodes/dc1/data/n1/maintenance", {})
    assert refused.status == 403
    assert (
        "needs a token with the 'admin:write' scope, and this registry has none"
        in (refused.body["error"]["message"])
    )
    assert (await send("PUT", f"{base}/v1/cluster/push", {"enabled": False})).status == 403
    assert frontend.operator_state.push_switch.enabled  # nothing happened


async def test_each_action_is_done_audited_and_described_by_the_document(
    start_frontend, connect, tmp_path
):
    tokens = tmp_path / "tokens"
    tokens.write_text(TOKENS)
    frontend = await start_frontend(auth_tokens_file=str(tokens), **ONE_EVICTION_BUDGET)
    stub = connect(frontend)
    for name in ("n1", "n2"):
        await stub.Register(pb.RegisterRequest(node=node(name), ttl_seconds=600), **FLEET)
    base = api_url(frontend)
    openapi = OpenAPI.from_dict((await get(f"{base}/v1/openapi.json")).body)

    node_url = f"{base}/v1/cluster/nodes/dc1/data/n1"
    reason = {"reason": "disk swap"}
    refused = await send("POST", f"{node_url}/maintenance", reason, "reader-1")
    assert refused.status == 403 and "admin:write" in refused.body["error"]["message"]
    check(openapi, "POST", f"{node_url}/maintenance", reason, refused, "reader-1")

    for action, body, status in (
        ("maintenance", reason, "OUT_OF_SERVICE"),
        ("clear", {}, "UP"),
        ("drain", {"reason": "move"}, "DRAINING"),
        ("evict", {"hold_seconds": 60, "reason": "bad disk"}, None),
        ("unhold", {}, None),
    ):
        done = await send("POST", f"{node_url}/{action}", body, "ops-2")
        assert done.status == 200, done.body
        assert (done.body["action"], done.body["status"], done.body["operator"]) == (
            action,
            status,
            "token:ops",
        )
        check(openapi, "POST", f"{node_url}/{action}", body, done, "ops-2")

    trail = (await get(f"{base}/v1/audit/dc1/data/n1", "reader-1")).body["entries"]
    assert [e["cause"] for e in trail if e["operator"] == "token:ops"] == [
        "OPERATOR_OUT_OF_SERVICE",
        "OPERATOR_CLEARED",
        "OPERATOR_DRAINING",
        "OPERATOR_EVICTED",
    ]
    assert trail[-1]["detail"].startswith("bad disk")

    switched = await send("PUT", f"{base}/v1/cluster/push", {"enabled": False}, "ops-2")
    assert switched.status == 200 and switched.body["enabled"] is False
    assert switched.body["changed_by"] == "token:ops"
    check(openapi, "PUT", f"{base}/v1/cluster/push", {"enabled": False}, switched, "ops-2")
    await eventually(lambda: not frontend.operator_state.push_switch.enabled, message="pushes held")
    assert (await send("PUT", f"{base}/v1/cluster/push", {"enabled": True}, "ops-2")).status == 200

    for index in range(3):  # never renewed: one evicted, two held as SUSPECT
        request = pb.RegisterRequest(node=node(f"silent{index}"), ttl_seconds=3)
        await stub.Register(request, **FLEET)
    await eventually(lambda: len(frontend.operations.suspects()) == 2, timeout=20)
    held = sorted(r.node.id for r in frontend.operations.suspects())
    body = {"nodes": [{"datacenter": "dc1", "type": "data", "id": held[0]}]}
    settled = await send("POST", f"{base}/v1/cluster/suspects/confirm", body, "ops-2")
    assert settled.status == 200 and "revision" in settled.body["nodes"][f"dc1/data/{held[0]}"]
    check(openapi, "POST", f"{base}/v1/cluster/suspects/confirm", body, settled, "ops-2")
    cancelled = await send(
        "POST", f"{base}/v1/cluster/suspects/cancel", {"datacenter": "dc1"}, "ops-2"
    )
    assert list(cancelled.body["nodes"]) == [f"dc1/data/{held[1]}"]


async def test_a_narrowed_token_acts_from_the_api_port_on_its_nodes_only(
    start_frontend, connect, tmp_path
):
    # The console's routes are the admin port's handlers: issue 25's node scopes hold there too.
    tokens = tmp_path / "tokens"
    tokens.write_text(TOKENS + "ops-dc1 admin:write:dc1/data,admin:read:dc1 t-ops\n")
    frontend = await start_frontend(auth_tokens_file=str(tokens))
    stub = connect(frontend)
    for message in (node("n1"), node("n2", datacenter="dc2"), node("s1", "session")):
        await stub.Register(pb.RegisterRequest(node=message, ttl_seconds=600), **FLEET)
    cluster = f"{api_url(frontend)}/v1/cluster"
    done = await send("POST", f"{cluster}/nodes/dc1/data/n1/maintenance", {}, "t-ops")
    assert (done.status, done.body["operator"]) == (200, "token:ops-dc1")
    for path, lacks in (
        ("nodes/dc2/data/n2/maintenance", "admin:write:dc2/data"),
        ("nodes/dc1/session/s1/drain", "admin:write:dc1/session"),
    ):
        refused = await send("POST", f"{cluster}/{path}", {}, "t-ops")
        assert refused.status == 403 and f"lacks {lacks}" in refused.body["error"]["message"]
    other = {"nodes": [{"datacenter": "dc2", "type": "data", "id": "n2"}]}
    refused = await send("POST", f"{cluster}/suspects/cancel", other, "t-ops")
    assert (
        refused.status == 403 and "lacks admin:write:dc2/data" in refused.body["error"]["message"]
    )
    refused = await send("PUT", f"{cluster}/push", {"enabled": False}, "t-ops")
    assert refused.status == 403
    assert refused.body["error"]["message"].startswith(
        "token 'ops-dc1' lacks admin:write (every datacenter and type;"
    )
    assert frontend.operator_state.push_switch.enabled
