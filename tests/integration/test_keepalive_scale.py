"""Many registrations over one KeepAlive stream, multiplexed onto ONE etcd LeaseKeepAlive stream;
the frontend's own leases on a stream of their own (D71)."""

from __future__ import annotations

import asyncio

import pytest
from noderegistry.v1 import registry_pb2 as pb

from tests.support.api import key_of, node, register
from tests.support.etcd_metrics import metric

pytestmark = pytest.mark.integration

COUNT = 1_000


def _lease_keepalive_streams(endpoint: str) -> float:
    return metric(endpoint, "grpc_server_started_total", grpc_method="LeaseKeepAlive")


async def test_a_thousand_registrations_over_one_stream_use_one_etcd_keepalive_stream(
    own_etcd, start_frontend, connect
):
    assert _lease_keepalive_streams(own_etcd.endpoint) == 0
    frontend = await start_frontend(own_etcd.endpoint, keepalive_coalesce_seconds=0)
    stub = connect(frontend)
    registrations: list[pb.RegisterResponse] = []
    # 100 at once, beyond the first Register limit (32): the rest wait in line for a slot and
    # none is refused (an idle frontend is not overloaded by one client's concurrency).
    for start in range(0, COUNT, 100):
        registrations += await asyncio.gather(
            *(register(stub, node(f"n{i:04d}"), ttl=30) for i in range(start, start + 100))
        )

    call = stub.KeepAlive()
    for _round in range(2):
        for registered in registrations:
            await call.write(
                pb.KeepAliveRequest(key=key_of(registered.node), token=registered.token)
            )
        answers = [await asyncio.wait_for(call.read(), 30) for _ in registrations]
        assert {a.key.id for a in answers} == {r.node.id for r in registrations}
        assert {(a.code, a.ttl_seconds) for a in answers} == {(0, 30)}
    await call.done_writing()
    assert frontend.admission.registers_refused == 0

    # Every client renewal went over one etcd stream; the evictor's and the announcement's leases
    # over a second one, so that they never queue behind a thousand client renewals.
    assert frontend.client.renewer.streams_opened == 1
    assert frontend.client.own_renewer.streams_opened == 1
    assert _lease_keepalive_streams(own_etcd.endpoint) == 2
