"""The HTTP API's own metrics, read from /metrics as Prometheus would: requests by route pattern,
method and status, their duration, open event streams and blocking reads waiting (issue 26)."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.api import node, register
from tests.support.http_api import EventStream, api_url, get
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration
ONE_NODE = {"route": "/v1/nodes/{datacenter}/{type}/{id}", "method": "GET"}


async def sample(admin: str, name: str, **labels: str) -> float:
    """The sum of the samples of `name` whose labels include `labels` (route patterns hold
    braces, so the exposition is parsed, not split)."""
    text = (await get(f"{admin}/metrics")).body
    return sum(
        value
        for family in text_string_to_metric_families(text)
        for sample_name, sample_labels, value, *_ in family.samples
        if sample_name == name and labels.items() <= sample_labels.items()
    )


async def test_requests_are_counted_by_route_pattern_method_and_status(start_frontend, connect):
    frontend = await start_frontend()
    await register(connect(frontend), node("n1"))
    base, admin = api_url(frontend), f"http://127.0.0.1:{frontend.admin.port}"
    for _ in range(3):
        assert (await get(f"{base}/v1/nodes/dc1/data/n1")).status == 200
    assert (await get(f"{base}/v1/nodes/dc1/data/absent")).status == 404
    assert (await get(f"{base}/no/such/path")).status == 404
    requests = "noderegistry_http_requests_total"
    assert await sample(admin, requests, code="200", **ONE_NODE) == 3
    assert await sample(admin, requests, code="404", **ONE_NODE) == 1
    assert await sample(admin, requests, route="unmatched", code="404") == 1
    assert await sample(admin, "noderegistry_http_request_seconds_count", **ONE_NODE) == 4


async def test_open_event_streams_and_waiting_blocking_reads_are_gauges(start_frontend, connect):
    frontend = await start_frontend()
    stub = connect(frontend)
    await register(stub, node("n1"))
    base, admin = api_url(frontend), f"http://127.0.0.1:{frontend.admin.port}"

    async def gauges_are(streams: int, waiting: int) -> bool:
        return (
            await sample(admin, "noderegistry_http_event_streams"),
            await sample(admin, "noderegistry_http_blocking_reads"),
        ) == (streams, waiting)

    stream = await EventStream.open(f"{base}/v1/watch")
    index = (await get(f"{base}/v1/nodes")).body["index"]
    blocked = asyncio.create_task(get(f"{base}/v1/nodes?index={index}&wait=30s"))
    try:
        await eventually(lambda: gauges_are(1, 1), message="one stream, one blocking read")
        await register(stub, node("n2"))  # the blocking read answers
        assert (await asyncio.wait_for(blocked, 15)).status == 200
        await stream.close()
        await eventually(lambda: gauges_are(0, 0), message="none left")
    finally:
        blocked.cancel()
        await stream.close()
