"""Identity records of ids long gone are collected, and incarnations stay monotonic per id through
the incarnation floor (issue 22, item 7; reliability K1; D86). With ephemeral ids (pod names)
the records used to grow without bound."""

from __future__ import annotations

import asyncio
import time

import grpc
import pytest
from noderegistry.v1 import registry_pb2 as pb

from registry_service.domain import Identity, NodeKey, RemovalReason
from registry_service.store._etcdpb import rpc_pb2 as etcd_pb
from registry_service.store.etcd import EtcdRegistryStore
from registry_service.store.etcd_client import EtcdClient, EtcdConfig
from registry_service.store.etcd_client.kv import prefix_end, put_op
from registry_service.store.identity_collection import read_floor
from registry_service.store.keys import KeyKind
from registry_service.store.records import encode_identity
from tests.support.api import WatchRecorder, key_of, node, register
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration

GONE = 100_000
_PUTS_PER_TXN = 100


async def _identity_count(client: EtcdClient, store: EtcdRegistryStore) -> int:
    prefix = store.keys.of_kind(KeyKind.IDENTITY)
    response = await client.kv.range(
        etcd_pb.RangeRequest(key=prefix, range_end=prefix_end(prefix), count_only=True)
    )
    return int(response.count)


async def _write_gone(
    client: EtcdClient, store: EtcdRegistryStore, ids: range, written_at: float
) -> None:
    """The identity records that `ids` registered and deregistered leave, written 100 per
    transaction, 8 transactions at a time (registering 100,000 nodes one by one would take this
    test minutes; what the collector reads is exactly these records)."""

    def record(i: int) -> etcd_pb.RequestOp:
        key = NodeKey("dc1", "pod", f"pod-{i:06d}")
        identity = Identity(i % 7 + 1, RemovalReason.DEREGISTERED)
        return put_op(store.keys.identity(key), encode_identity(identity, written_at))

    writers = asyncio.Semaphore(8)

    async def write(first: int) -> None:
        async with writers:
            ops = [record(i) for i in ids[first : first + _PUTS_PER_TXN]]
            await client.kv.txn(etcd_pb.TxnRequest(success=ops))

    await asyncio.gather(*(write(first) for first in range(0, len(ids), _PUTS_PER_TXN)))


@pytest.mark.timeout(300)
async def test_100000_ids_gone_are_collected_and_each_comes_back_above_its_incarnation(
    own_etcd, cluster, start_frontend, connect
):
    # 1. A node that stays registered all along (its frontend stops: the 100,000 records below
    #    would otherwise pass through its watch, on this test's one core).
    first = await start_frontend(own_etcd.endpoint)
    staying = await register(connect(first), node("pod-staying", "pod"), ttl=120)
    await first.stop()
    client = EtcdClient(EtcdConfig(endpoints=(own_etcd.endpoint,)))
    store = EtcdRegistryStore(client, first.settings.prefix, "test")
    try:
        # 2. 100,000 pods that registered (incarnations 1-7) and left an hour ago; one held
        #    out by an operator for another hour; one that left 10 s ago (incarnation 9).
        now = time.time()
        started = time.monotonic()
        await _write_gone(client, store, range(GONE), now - 3600)
        written = time.monotonic() - started
        held = NodeKey("dc1", "pod", "pod-held")
        recent = NodeKey("dc1", "pod", "pod-recent")
        await client.kv.put(
            store.keys.identity(held),
            encode_identity(Identity(3, RemovalReason.EVICTED, now + 3600, "ops"), now - 3600),
        )
        await client.kv.put(store.keys.identity(recent), encode_identity(Identity(9), now - 10))
        assert await _identity_count(client, store) == GONE + 3
        # 3. A retention of 30 s: the 100,000 go; the held, the recent and the registered stay.
        started = time.monotonic()
        assert await store.collect_identities(time.time() - 30, time.time()) == GONE
        collected = time.monotonic() - started
        print(f"K1: {GONE} records written in {written:.1f} s, collected in {collected:.1f} s")
        assert await _identity_count(client, store) == 3
        assert (await read_floor(client, store.keys))[0] == 7
        # 4. A retention of 0: the recent one goes too, never a member's, never a held one.
        assert await store.collect_identities(time.time() + 60, time.time()) == 1
        assert await _identity_count(client, store) == 2
        assert (await read_floor(client, store.keys))[0] == 9
    finally:
        await client.close()
    # 5. Pods come back: above every incarnation they ever had (7 at most, and 9), so a watcher
    #    never sees an old incarnation of an id again; the staying pod is updated as before.
    stub = connect(await start_frontend(own_etcd.endpoint))
    recorder = WatchRecorder(stub).start()
    try:
        back = await register(stub, node("pod-000006", "pod"))  # it had incarnation 7
        again = await register(stub, node("pod-recent", "pod"))  # it had incarnation 9
        assert back.node.incarnation == again.node.incarnation == 10
        await recorder.wait_for_node("pod-recent")
        assert recorder.nodes["pod-000006"].incarnation == 10
        with pytest.raises(grpc.aio.AioRpcError) as held_out:  # its record, and hold, stayed
            await register(stub, node("pod-held", "pod"))
        assert held_out.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        renewed = await register(stub, node("pod-staying", "pod"), ttl=120, token=staying.token)
        assert renewed.node.incarnation == staying.node.incarnation == 1
    finally:
        await recorder.close()


async def test_a_frontend_collects_the_records_of_deregistered_ids_and_they_return_higher(
    start_frontend, connect
):
    """As a user runs it: a retention of 0 and a collection every 0.2 s. Pods register and
    deregister; their records go; one registers again with a higher incarnation, as its watcher
    sees."""
    frontend = await start_frontend(
        identity_retention_seconds=0.0, identity_gc_interval_seconds=0.2
    )
    await eventually(lambda: frontend.evictor.status.leader, message="it leads eviction")
    stub = connect(frontend)
    recorder = WatchRecorder(stub).start()
    try:
        names = [f"pod-{i}" for i in range(30)]
        answers = [await register(stub, node(name, "pod")) for name in names]
        for answer in answers:
            await stub.Deregister(pb.DeregisterRequest(key=key_of(answer.node), token=answer.token))
        await recorder.wait_for(lambda r: not r.nodes, message="all 30 gone")
        client = frontend.client
        await eventually(
            lambda: _no_identities(client, frontend.store), timeout=20, message="records collected"
        )
        # The pass that deleted the last ones has returned (and counted them) a moment later.
        await eventually(lambda: frontend.identity_gc.collected == 30, message="30 counted")
        back = await register(stub, node("pod-7", "pod"))
        assert back.node.incarnation == 2  # the floor: 1, the highest collected
        await recorder.wait_for_node("pod-7")
        pod_7 = [c.incarnation for c in recorder.changes if c.id == "pod-7"]
        assert pod_7 == [1, 1, 2]  # ADDED 1, REMOVED 1, ADDED 2: never back to 1
        assert not recorder.violations
    finally:
        await recorder.close()


async def _no_identities(client: EtcdClient, store: EtcdRegistryStore) -> bool:
    return await _identity_count(client, store) == 0
