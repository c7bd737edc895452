"""The OpenAPI document served at /v1/openapi.json stays true: real answers of every path, errors
and event-stream events included, are validated against it with openapi-core (which also
validates the document itself against the OpenAPI 3.1 schema), and every /v1 route is in it."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
from jsonschema.exceptions import ValidationError
from openapi_core import OpenAPI
from openapi_core.testing import MockRequest, MockResponse
from openapi_schema_validator import OAS31Validator

from tests.support.api import node, register
from tests.support.http_api import ONE_EVICTION_BUDGET, Answer, EventStream, api_url, get
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration


def check(openapi: OpenAPI, url: str, answer: Answer, token: str = "") -> None:
    parts = urlsplit(url)
    kind = answer.headers.get("Content-Type", "").split(";")[0]
    body = json.dumps(answer.body) if kind == "application/json" else answer.body
    request = MockRequest(
        f"{parts.scheme}://{parts.netloc}",
        "get",
        parts.path,
        args=dict(parse_qsl(parts.query)),
        headers={"Authorization": f"Bearer {token}"} if token else {},
    )
    response = MockResponse(body.encode(), answer.status, answer.headers, kind)
    openapi.validate_response(request, response)


def check_event(document: dict[str, Any], schema: str, data: Any) -> None:
    root = {"$ref": f"#/components/schemas/{schema}", "components": document["components"]}
    OAS31Validator(root).validate(data)


async def test_every_answer_and_event_matches_the_served_document(start_frontend, connect):
    frontend = await start_frontend(**ONE_EVICTION_BUDGET)
    base = api_url(frontend)
    served = await get(f"{base}/v1/openapi.json")
    document = served.body
    openapi = OpenAPI.from_dict(document)  # refuses a document that is not valid OpenAPI 3.1
    stub = connect(frontend)
    await register(stub, node("steady", "data"), ttl=600)
    for index in range(3):  # never renewed: one evicted, two held as SUSPECT
        await register(stub, node(f"silent{index}", "data"), ttl=3)
    await eventually(
        lambda: len(frontend.operations.suspects()) == 2, timeout=20, message="two suspects"
    )
    stream = await EventStream.open(f"{base}/v1/watch?type=data")
    try:
        index = (await get(f"{base}/v1/nodes")).body["index"]
        for path, status in (
            ("/v1/nodes", 200),
            ("/v1/nodes?type=data&datacenter=dc1&consistency=cached", 200),
            (f"/v1/nodes?index={index}&wait=10ms", 200),
            ("/v1/nodes?index=x", 400),
            ("/v1/nodes/dc1/data/steady", 200),
            ("/v1/nodes/dc1/data/absent", 404),
            ("/v1/audit/dc1/data/silent0", 200),
            ("/v1/cluster/suspects", 200),
            ("/v1/cluster/convergence", 200),
            ("/v1/watch?type=BAD", 400),
            ("/readyz", 200),
            ("/healthz", 200),
            ("/v1/cluster/frontends", 200),
            ("/v1/cluster/push", 200),
            ("/v1/cluster/nodes/dc1/data/steady", 200),
        ):
            answer = await get(base + path)
            assert answer.status == status, (path, answer.body)
            check(openapi, base + path, answer)
        suspects = (await get(f"{base}/v1/cluster/suspects")).body
        assert suspects["self_preservation"] is True and len(suspects["suspects"]) == 2
        audit = (await get(f"{base}/v1/audit/dc1/data/silent0")).body
        assert audit["entries"], "a trail with entries to describe"

        # The event stream: each event's data is its schema.
        snapshot = await stream.next_change()
        check_event(document, "Snapshot", snapshot.data)
        await register(stub, node("late", "data"))
        delta = await stream.next_change()
        check_event(document, "Delta", delta.data)
        progress = await stream.next()
        assert progress is not None and progress.name == "progress"
        check_event(document, "Progress", progress.data)
        await frontend.stop()
        error = await stream.next_change()
        assert error.name == "error"
        check_event(document, "Error", error.data)
    finally:
        await stream.close()
    with pytest.raises(ValidationError, match="'extra' was unexpected"):
        check_event(document, "Delta", {**delta.data, "extra": 1})  # the check can fail


async def test_errors_of_the_guarded_port_match_the_document(tmp_path, start_frontend):
    tokens = tmp_path / "tokens"
    tokens.write_text("fleet register fleet-1\n")
    frontend = await start_frontend(auth_tokens_file=str(tokens))
    base = api_url(frontend)
    openapi = OpenAPI.from_dict((await get(f"{base}/v1/openapi.json")).body)
    for path, token, status in (
        ("/v1/nodes", "", 401),
        ("/v1/nodes", "fleet-1", 403),
        ("/v1/cluster/suspects", "fleet-1", 403),
    ):
        answer = await get(base + path, token)
        assert answer.status == status
        check(openapi, base + path, answer, token)


async def test_every_v1_route_and_the_probes_are_in_the_document(start_frontend):
    frontend = await start_frontend()
    document = (await get(f"{api_url(frontend)}/v1/openapi.json")).body
    routes = {
        (route.method.lower(), route.path)
        for route in frontend.api.routes()
        if route.path.startswith("/v1/") or route.path in ("/healthz", "/readyz")
    }
    documented = {
        (method, path)
        for path, operations in document["paths"].items()
        for method in operations
        if method in ("get", "put", "post")
    }
    assert routes == documented
