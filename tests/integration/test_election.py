"""The evictor's election on a real etcd: a candidate knows its leadership is gone as soon as
its key is (D84), from the store's one watch or, after a gap in it, from the re-read."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from registry_service.store._etcdpb.rpc_pb2 import TxnRequest
from registry_service.store.etcd import EtcdRegistryStore
from registry_service.store.etcd_client.kv import delete_op

pytestmark = pytest.mark.integration


async def _delete(etcd_client, key: bytes) -> int:
    response = await etcd_client.kv.txn(TxnRequest(success=[delete_op(key)]))
    return int(response.header.revision)


async def test_a_leader_whose_key_is_deleted_knows_from_the_watch_then_stands_again(
    etcd_client, cluster
):
    store = EtcdRegistryStore(etcd_client, f"/noderegistry/{cluster}/", "fe-1")
    election = store.election("evictor", "fe-1", 30, 0.1)
    await election.campaign()
    first = election.fence
    revision = await etcd_client.kv.current_revision(b"/")
    watching = asyncio.create_task(_drain(store.watch(revision + 1)))
    try:
        await _delete(etcd_client, first)  # its lease lives on: only the watch can tell
        await asyncio.wait_for(election.lost(), timeout=5)
        assert election.deposed
        await election.campaign()  # stands again, on a new lease
        assert election.fence != first and not election.deposed
    finally:
        watching.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watching
        await election.resign()


async def test_a_key_deleted_while_the_watch_was_away_is_found_by_the_re_read(etcd_client, cluster):
    store = EtcdRegistryStore(etcd_client, f"/noderegistry/{cluster}/", "fe-1")
    election = store.election("evictor", "fe-1", 30, 0.1)
    await election.campaign()
    await store.load()
    assert not election.deposed
    await _delete(etcd_client, election.fence)
    await store.load()
    assert election.deposed
    await election.resign()


async def _drain(items) -> None:
    async for _ in items:
        pass
