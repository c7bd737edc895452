"""Every bad input of docs/design.md §1 gets a clear status, and etcd's revision does not move."""

from __future__ import annotations

import grpc
import pytest
from noderegistry.v1 import registry_pb2 as pb

from tests.support.api import KeepAliveStream, node, register

pytestmark = pytest.mark.integration

INVALID = grpc.StatusCode.INVALID_ARGUMENT


def _node(**changes: object) -> pb.Node:
    message = node("n1")
    metadata = changes.pop("metadata", None)
    for name, value in changes.items():
        setattr(message, name, value)
    if metadata is not None:
        message.metadata.update(metadata)
    return message


BAD_REGISTERS = {
    "id missing": (_node(id=""), 10, "id is required"),
    "id upper case": (_node(id="Node1"), 10, "must match"),
    "id too long": (_node(id="n" * 64), 10, "the limit is 63"),
    "id starts with dash": (_node(id="-n1"), 10, "must match"),
    "type upper case": (_node(type="Data"), 10, "must match"),
    "type starts with digit": (_node(type="1data"), 10, "must match"),
    "type too long": (_node(type="t" * 32), 10, "the limit is 31"),
    "datacenter with underscore": (_node(datacenter="dc_1"), 10, "must match"),
    "address missing": (_node(address=""), 10, "address is required"),
    "address without port": (_node(address="host"), 10, "host:port"),
    "port zero": (_node(address="host:0"), 10, "port must be"),
    "port too large": (_node(address="host:65536"), 10, "port must be"),
    "port not a number": (_node(address="host:http"), 10, "port must be"),
    "bad IPv4": (_node(address="999.1.1.1:80"), 10, "IPv4"),
    "IPv6 without brackets": (_node(address="::1:80"), 10, "brackets"),
    "bad IPv6 in brackets": (_node(address="[::g]:80"), 10, "IPv6"),
    "host with underscore": (_node(address="my_host:80"), 10, "RFC 1123"),
    "too many metadata entries": (
        _node(metadata={f"k{i}": "v" for i in range(65)}),
        10,
        "65 entries",
    ),
    "metadata key with space": (_node(metadata={"a b": "v"}), 10, "metadata key"),
    "metadata key too long": (_node(metadata={"k" * 129: "v"}), 10, "metadata key"),
    "reserved metadata prefix": (_node(metadata={"registry.x": "v"}), 10, "reserved"),
    "metadata value too long": (_node(metadata={"k": "v" * 1025}), 10, "the limit is 1024"),
    "metadata too large in all": (
        _node(metadata={f"k{i}": "v" * 1000 for i in range(17)}),
        10,
        "the limit is 16384",
    ),
    "ttl below minimum": (_node(), 2, "out of range"),
    "ttl above maximum": (_node(), 3601, "out of range"),
    "status SUSPECT": (_node(status=pb.NODE_STATUS_SUSPECT), 10, "set by the registry"),
    "unknown status": (_node(status=9), 10, "not a known NodeStatus"),
}


async def _stored(etcd_client, cluster: str) -> list[tuple[bytes, int]]:
    """The cluster's keys with their mod revisions: what a rejected request must leave alone.
    etcd's global revision is no measure: the shared etcd also holds other tests' registrations,
    and their leases expire whenever they do (tests/chaos/test_fuzz.py reads the same way)."""
    _, kvs = await etcd_client.kv.range_prefix(f"/noderegistry/{cluster}/".encode())
    return sorted((kv.key, kv.mod_revision) for kv in kvs)


@pytest.fixture
async def frontend(start_frontend):
    return await start_frontend(keepalive_max_registrations_per_stream=2)


@pytest.mark.parametrize("case", sorted(BAD_REGISTERS))
async def test_bad_register_is_invalid_argument_and_writes_nothing(
    case, frontend, connect, etcd_client, cluster
):
    message, ttl, expected_text = BAD_REGISTERS[case]
    stub = connect(frontend)
    stored = await _stored(etcd_client, cluster)

    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await register(stub, message, ttl=ttl)

    assert raised.value.code() == INVALID, raised.value.details()
    assert expected_text in raised.value.details()
    assert await _stored(etcd_client, cluster) == stored


async def test_too_long_idempotency_key_is_invalid(frontend, connect, etcd_client, cluster):
    stored = await _stored(etcd_client, cluster)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await register(connect(frontend), node("n1"), idempotency_key="k" * 129)
    assert raised.value.code() == INVALID
    assert await _stored(etcd_client, cluster) == stored


async def test_values_at_the_limits_are_accepted_in_canonical_form(frontend, connect):
    stub = connect(frontend)
    cases = [
        (_node(id="n" * 63, address="[0:0::1]:80"), 3, "[::1]:80"),
        (_node(id="n2", address="Host.Example.COM:65535"), 3600, "host.example.com:65535"),
        (
            _node(id="n3", address="10.1.2.3:1", metadata={f"k{i}": "v" for i in range(64)}),
            10,
            "10.1.2.3:1",
        ),
    ]
    for message, ttl, address in cases:
        response = await register(stub, message, ttl=ttl)
        assert response.node.address == address
        assert response.ttl_seconds == ttl


async def test_bad_requests_of_the_other_rpcs(frontend, connect, etcd_client, cluster):
    stub = connect(frontend)
    stored = await _stored(etcd_client, cluster)
    calls = {
        "deregister bad key": (
            stub.Deregister(
                pb.DeregisterRequest(key=pb.NodeKey(datacenter="DC", type="t", id="x"))
            ),
            INVALID,
        ),
        "deregister unknown node": (
            stub.Deregister(
                pb.DeregisterRequest(
                    key=pb.NodeKey(datacenter="dc1", type="data", id="nobody"), token="t"
                )
            ),
            grpc.StatusCode.NOT_FOUND,
        ),
        "get_nodes bad consistency": (stub.GetNodes(pb.GetNodesRequest(consistency=7)), INVALID),
        "get_nodes bad scope": (
            stub.GetNodes(pb.GetNodesRequest(scope=pb.Scope(datacenters=["Bad DC"]))),
            INVALID,
        ),
    }
    for name, (call, code) in calls.items():
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await call
        assert raised.value.code() == code, name

    for request in (
        pb.WatchNodesRequest(resume_revision=-1),
        pb.WatchNodesRequest(scope=pb.Scope(types=["Bad"])),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            async for _ in stub.WatchNodes(request):
                pass
        assert raised.value.code() == INVALID
    assert await _stored(etcd_client, cluster) == stored


async def test_keepalive_bad_key_and_per_stream_limit_are_answered_per_item(frontend, connect):
    stub = connect(frontend)
    registrations = [await register(stub, node(f"k{i}"), ttl=10) for i in range(3)]
    stream = KeepAliveStream(stub)
    try:
        bad = await stream.renew(pb.NodeKey(datacenter="dc1", type="data", id="BAD"), "t")
        assert bad.code == INVALID.value[0]
        answers = [
            await stream.renew(pb.NodeKey(datacenter="dc1", type="data", id=r.node.id), r.token)
            for r in registrations
        ]
        # The invalid key took one of the two places this stream may renew.
        assert [a.code for a in answers] == [
            0,
            grpc.StatusCode.RESOURCE_EXHAUSTED.value[0],
            grpc.StatusCode.RESOURCE_EXHAUSTED.value[0],
        ]
        assert "the limit is 2" in answers[1].message
        again = await stream.renew(
            pb.NodeKey(datacenter="dc1", type="data", id="k0"), registrations[0].token
        )
        assert again.code == 0  # the stream is still usable
    finally:
        await stream.close()


async def test_oversized_message_is_resource_exhausted(
    start_frontend, connect, etcd_client, cluster
):
    stub = connect(await start_frontend(max_receive_message_bytes=64 * 1024))
    stored = await _stored(etcd_client, cluster)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await register(stub, _node(metadata={"k": "v" * 100_000}))
    assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert await _stored(etcd_client, cluster) == stored
