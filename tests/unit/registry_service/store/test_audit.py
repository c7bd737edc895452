"""The audit log's one transaction rule, without etcd: every store module that records an audit
builds its transaction for an audit lease; a lapsed lease is replaced once, and an audit that is
off records nothing (the integration tests show the same against etcd)."""

from __future__ import annotations

import pytest

from registry_service.domain import AuditCause, NodeKey
from registry_service.errors import LeaseNotFoundError
from registry_service.store._etcdpb import rpc_pb2 as pb
from registry_service.store.audit import AuditLog
from registry_service.store.keys import Keyspace


class FakeLease:
    def __init__(self) -> None:
        self.granted: list[int] = []

    async def grant(self, ttl_seconds: int) -> int:
        self.granted.append(ttl_seconds)
        return 100 + len(self.granted)


class FakeKV:
    def __init__(self, lapsed: int) -> None:
        self.lapsed = lapsed  # how many transactions find their lease gone
        self.sent: list[pb.TxnRequest] = []

    async def txn(self, request: pb.TxnRequest) -> pb.TxnResponse:
        self.sent.append(request)
        if len(self.sent) <= self.lapsed:
            raise LeaseNotFoundError("etcdserver: requested lease not found")
        return pb.TxnResponse(succeeded=True)


class FakeClient:
    def __init__(self, lapsed: int = 0) -> None:
        self.lease = FakeLease()
        self.kv = FakeKV(lapsed)


KEY = NodeKey("dc1", "data", "a")


def audit_log(client: FakeClient, retention_seconds: int = 86_400) -> AuditLog:
    return AuditLog(client, Keyspace("/r/"), "fe-1", retention_seconds)  # type: ignore[arg-type]


def recorded(audit: AuditLog, leases: list[int]):
    def build(lease: int) -> pb.TxnRequest:
        leases.append(lease)
        ops = [audit.node_entry(KEY, AuditCause.REGISTERED, 1, "", lease)] if lease else []
        return pb.TxnRequest(success=ops)

    return build


async def test_a_lapsed_audit_lease_is_replaced_once_and_the_transaction_built_again():
    client = FakeClient(lapsed=1)
    audit = audit_log(client)
    leases: list[int] = []
    response = await audit.commit(recorded(audit, leases))
    assert response.succeeded
    assert leases == [101, 102] and client.lease.granted == [86_400, 86_400]
    assert client.kv.sent[-1].success[0].request_put.lease == 102


async def test_a_lease_gone_twice_is_the_callers_error():
    client = FakeClient(lapsed=2)
    audit = audit_log(client)
    with pytest.raises(LeaseNotFoundError):
        await audit.commit(recorded(audit, []))
    assert len(client.kv.sent) == 2


async def test_an_audit_that_is_off_records_nothing_and_retries_nothing():
    client = FakeClient(lapsed=1)
    audit = audit_log(client, retention_seconds=0)
    leases: list[int] = []
    with pytest.raises(LeaseNotFoundError):  # a lease of the change itself: not the audit's
        await audit.commit(recorded(audit, leases))
    assert leases == [0] and client.lease.granted == []


async def test_records_share_one_lease_until_it_is_forgotten():
    client = FakeClient()
    audit = audit_log(client)
    assert await audit.leases.current() == await audit.leases.current() == 101
    audit.leases.forget()
    assert await audit.leases.current() == 102
