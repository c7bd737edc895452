"""`noderegistry_nodes`, the scaling signal (issue 22, item 6; reliability M1; D87): a count that
drops to 0 stays a series at 0, and a new eviction leader reports the same series, a type that
emptied before it started included. An HPA through prometheus-adapter stopped scaling when the
series vanished."""

from __future__ import annotations

import re
import time

import pytest
from noderegistry.v1 import registry_pb2 as pb

from registry_service.domain import NodeKey
from tests.support.api import key_of, node, register
from tests.support.http import get
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration

STATUSES = ("DRAINING", "OUT_OF_SERVICE", "SUSPECT", "UP")
D1 = NodeKey("dc1", "data", "d1")


async def node_series(frontend) -> dict[tuple[str, str, str], float]:
    """Every `noderegistry_nodes` series a frontend reports now: (datacenter, type, status)."""
    _, text = await get(f"http://127.0.0.1:{frontend.admin.port}/metrics")
    series = {}
    for line in text.splitlines():
        if line.startswith("noderegistry_nodes{"):
            labels = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}")[0]))
            key = (labels["datacenter"], labels["type"], labels["status"])
            series[key] = float(line.rsplit(" ", 1)[1])
    return series


def of_type(node_type: str, up: float) -> dict[tuple[str, str, str], float]:
    return {("dc1", node_type, s): (up if s == "UP" else 0.0) for s in STATUSES}


async def test_a_count_that_drops_to_0_stays_a_series_at_0(start_frontend, connect):
    frontend = await start_frontend()
    await eventually(lambda: frontend.evictor.status.leader, message="it leads eviction")
    stub = connect(frontend)
    answer = await register(stub, node("d1", "data"))
    await eventually(lambda: frontend.hub.registration(D1) is not None)
    assert await node_series(frontend) == of_type("data", 1)
    await stub.Deregister(pb.DeregisterRequest(key=key_of(answer.node), token=answer.token))
    await eventually(lambda: frontend.hub.registration(D1) is None)
    assert await node_series(frontend) == of_type("data", 0)  # before: no series at all


async def test_a_new_eviction_leader_reports_the_same_series(start_frontend, connect):
    """1. A leads; a meta node comes and goes (meta now has none), a data node stays. 2. C starts
    after that: its view never held a meta node. 3. A stops: C leads and reports exactly A's
    series, meta's zeros included (C learns meta from its identity record)."""
    a = await start_frontend()
    await eventually(lambda: a.evictor.status.leader, message="A leads eviction")
    stub = connect(a)
    meta = await register(stub, node("m1", "meta"))
    await stub.Deregister(pb.DeregisterRequest(key=key_of(meta.node), token=meta.token))
    await register(stub, node("d1", "data"), ttl=60)
    expected = {**of_type("data", 1), **of_type("meta", 0)}
    await eventually(lambda: _reports(a, expected), message="A's series")
    c = await start_frontend()
    assert await node_series(c) == {}  # one reporter: the leader
    stopping = time.monotonic()
    await a.stop()
    await eventually(lambda: _reports(c, expected), timeout=15, message="C reports A's series")
    print(f"M1: the new leader reported {time.monotonic() - stopping:.2f} s after A began to stop")


async def _reports(frontend, expected) -> bool:
    return await node_series(frontend) == expected
