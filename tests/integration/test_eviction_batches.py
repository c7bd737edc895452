"""The evictor's writes in batches (D48): many removals per etcd transaction, each still guarded on
its own, all fenced by leadership."""

from __future__ import annotations

import asyncio

import pytest
from noderegistry.v1 import registry_pb2 as pb

from registry_service.domain import AuditCause, Scope
from registry_service.store.base import EvictorWrite, StoredNode
from tests.support.api import WatchRecorder, node, register
from tests.support.etcd_metrics import metric as etcd_metric
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration

COUNT = 150


def _txns(endpoint: str) -> float:
    return etcd_metric(endpoint, "grpc_server_handled_total", grpc_method="Txn")


async def test_expired_members_are_removed_many_per_transaction_each_on_its_own_guard(
    own_etcd, start_frontend, connect
):
    # A dry-run evictor decides and writes nothing: the test carries the writes out itself.
    frontend = await start_frontend(own_etcd.endpoint, evictor_dry_run=True)
    stub = connect(frontend)
    for start in range(0, COUNT, 50):
        await asyncio.gather(
            *(register(stub, node(f"x{i:03d}"), ttl=30) for i in range(start, start + 50))
        )
    recorder = WatchRecorder(stub).start()
    await recorder.wait_for_node(f"x{COUNT - 1:03d}")
    for member in list(frontend.hub.view.members(Scope())):
        await frontend.client.lease.revoke(member.registration.lease_id)
    await eventually(lambda: len(frontend.hub.view.expired()) == COUNT, message="all expired")

    fence = f"{frontend.settings.prefix}fence".encode()
    await frontend.client.kv.put(fence, b"")
    writes = []
    for key, member in sorted(frontend.hub.view.expired()):
        stale = key.id == "x007"  # its guard compares a revision it no longer has
        writes.append(
            EvictorWrite(
                StoredNode(
                    key,
                    frontend.hub.revision,
                    member.registration,
                    member.mod_revision - 1 if stale else member.mod_revision,
                ),
                AuditCause.EXPIRED,
                "test",
            )
        )
    before = _txns(own_etcd.endpoint)
    revisions = await frontend.store.evict_many(writes, fence=fence)
    assert _txns(own_etcd.endpoint) - before == 2  # 100 + 50
    assert [r is None for r in revisions] == [w.expected.key.id == "x007" for w in writes]

    await eventually(
        lambda: sum(1 for c in recorder.changes if c.type == pb.EVENT_TYPE_REMOVED) == COUNT - 1,
        message="removals seen by the watcher",
    )
    assert {c.reason for c in recorder.changes if c.type == pb.EVENT_TYPE_REMOVED} == {
        pb.REMOVAL_REASON_EXPIRED
    }
    assert set(recorder.nodes) == {"x007"}
    await recorder.close()


async def test_without_the_fence_no_eviction_of_a_batch_is_written(
    own_etcd, start_frontend, connect
):
    frontend = await start_frontend(own_etcd.endpoint, evictor_dry_run=True)
    stub = connect(frontend)
    await asyncio.gather(*(register(stub, node(f"y{i}"), ttl=30) for i in range(3)))
    await eventually(lambda: sum(1 for _ in frontend.hub.view.members(Scope())) == 3)
    for member in list(frontend.hub.view.members(Scope())):
        await frontend.client.lease.revoke(member.registration.lease_id)
    await eventually(lambda: len(frontend.hub.view.expired()) == 3, message="all expired")
    writes = [
        EvictorWrite(
            StoredNode(key, frontend.hub.revision, member.registration, member.mod_revision),
            AuditCause.EXPIRED,
        )
        for key, member in frontend.hub.view.expired()
    ]
    revision = frontend.hub.revision
    fence = f"{frontend.settings.prefix}no-such-fence".encode()
    assert await frontend.store.evict_many(writes, fence=fence) == [None, None, None]
    assert len(frontend.hub.view.expired()) == 3
    assert await frontend.store.current_revision() == revision
