"""The error edge: whatever a handler raises becomes a status once, unary and streaming RPCs
alike. An unexpected exception is answered INTERNAL naming only a request id; its text and
traceback stay in the frontend's log under that id. A client that cancels is no error."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import grpc
import grpc.aio
import pytest
from noderegistry.v1 import registry_pb2 as pb

from registry_service.domain import NodeKey
from registry_service.failpoints import RAISED_TEXT
from registry_service.store.keys import Keyspace
from tests.support.api import KeepAliveStream, key_of, node, register
from tests.support.frontends import stub as stub_for
from tests.support.waiting import eventually, next_message

pytestmark = pytest.mark.integration

_LOG_RECORD_START = re.compile(r"\n\d{4}-\d\d-\d\d ")


def _assert_internal_and_logged(message: str, failpoint: str, log_path: Path) -> None:
    """The client's message names a request id and nothing of the exception; the frontend's log
    has the traceback, exception text included, under that id."""
    assert RAISED_TEXT not in message
    assert failpoint not in message
    assert "RuntimeError" not in message
    found = re.search(r"request id ([0-9a-f]+)", message)
    assert found, message
    log = log_path.read_text()
    marker = f"(request id {found.group(1)})"
    assert marker in log, log
    record = _LOG_RECORD_START.split(log.split(marker, 1)[1], maxsplit=1)[0]
    assert "Traceback" in record
    assert f"RuntimeError: {failpoint}: {RAISED_TEXT}" in record


async def test_an_unexpected_error_is_internal_with_only_a_request_id_in_unary_and_streams(
    etcd, spawn_frontend, monkeypatch
):
    """1. a frontend runs with failpoints that raise a plain RuntimeError in GetNodes (unary),
       WatchNodes (server stream) and one registration's renewal (bidi KeepAlive).
    2. each answers INTERNAL with a request id; the exception's text stays in the log.
    3. the KeepAlive stream outlives its INTERNAL answer and answers the next renewal."""
    monkeypatch.setenv(
        "REGISTRY_FAILPOINTS",
        "get_nodes.before_read=raise,watch.before_subscribe=raise,keep_alive.before_renew=raise",
    )
    frontend = await spawn_frontend(etcd.endpoint)
    channel, stub = stub_for(frontend.address)
    try:
        registered = await register(stub, node("n1"))

        with pytest.raises(grpc.aio.AioRpcError) as unary:
            await stub.GetNodes(pb.GetNodesRequest(), timeout=10)
        assert unary.value.code() == grpc.StatusCode.INTERNAL
        _assert_internal_and_logged(
            unary.value.details(), "get_nodes.before_read", frontend.log_path
        )

        with pytest.raises(grpc.aio.AioRpcError) as stream:
            await next_message(stub.WatchNodes(pb.WatchNodesRequest()))
        assert stream.value.code() == grpc.StatusCode.INTERNAL
        _assert_internal_and_logged(
            stream.value.details(), "watch.before_subscribe", frontend.log_path
        )

        keepalive = KeepAliveStream(stub)
        failed = await keepalive.renew(key_of(registered.node), registered.token)
        assert failed.code == grpc.StatusCode.INTERNAL.value[0]
        _assert_internal_and_logged(failed.message, "keep_alive.before_renew", frontend.log_path)
        refused = await keepalive.renew(key_of(registered.node), "not-the-token")
        assert refused.code == grpc.StatusCode.NOT_FOUND.value[0]
        await keepalive.close()
    finally:
        await channel.close()


async def test_an_unexpected_error_of_a_keepalive_stream_ends_it_internal(
    etcd, spawn_frontend, monkeypatch
):
    monkeypatch.setenv("REGISTRY_FAILPOINTS", "keep_alive.read=raise")
    frontend = await spawn_frontend(etcd.endpoint)
    channel, stub = stub_for(frontend.address)
    try:
        with pytest.raises(grpc.aio.AioRpcError) as ended:
            await next_message(stub.KeepAlive())
        assert ended.value.code() == grpc.StatusCode.INTERNAL
        _assert_internal_and_logged(ended.value.details(), "keep_alive.read", frontend.log_path)
    finally:
        await channel.close()


async def test_clients_that_cancel_their_streams_cause_no_error_log(
    start_frontend, connect, caplog
):
    frontend = await start_frontend()
    stub = connect(frontend)
    registered = await register(stub, node("n1"))
    watch = stub.WatchNodes(pb.WatchNodesRequest())
    await next_message(watch)
    keepalive = KeepAliveStream(stub)
    assert (await keepalive.renew(key_of(registered.node), registered.token)).code == 0

    def handled(method: str) -> float:
        return sum(
            sample.value
            for metric in frontend.metrics.registry.collect()
            if metric.name == "grpc_server_handled"
            for sample in metric.samples
            if sample.name == "grpc_server_handled_total" and sample.labels["grpc_method"] == method
        )

    with caplog.at_level(logging.DEBUG):
        watch.cancel()
        keepalive.call.cancel()
        await eventually(lambda: not frontend.hub.subscriptions, message="watch closed")
        await eventually(lambda: handled("KeepAlive") >= 1, message="keepalive ended")
    errors = [record for record in caplog.records if record.levelno >= logging.ERROR]
    assert errors == []
    await keepalive.close()


async def test_an_unreadable_identity_record_is_data_loss_naming_the_key(
    start_frontend, connect, etcd_client, cluster
):
    """A corrupt record in etcd fails the call that needs it with DATA_LOSS and the key to repair,
    instead of crashing it; the frontend serves everything else."""
    stub = connect(await start_frontend())
    key = Keyspace(f"/noderegistry/{cluster}/").identity(NodeKey("dc1", "data", "broken"))
    await etcd_client.kv.put(key, b"{not json")

    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await register(stub, node("broken"))
    assert refused.value.code() == grpc.StatusCode.DATA_LOSS
    assert key.decode() in refused.value.details()

    await register(stub, node("healthy"))
    await etcd_client.kv.put(key, b'{"v": 1, "incarnation": 4}')  # an operator repairs it
    assert (await register(stub, node("broken"))).node.incarnation == 5
