"""A client session's lease in etcd (D73): `sessions/<session>/<ttl>`, on the lease that the
session's registrations of that TTL share, naming it. A registration of a session is written
only while that key names its lease (or, for the session's first, while it is absent: the write
creates it), so that a registration never rides on a lease its session no longer holds.
"""

from __future__ import annotations

from registry_service.domain import Registration
from registry_service.store._etcdpb import rpc_pb2 as pb
from registry_service.store.etcd_client import EtcdClient
from registry_service.store.etcd_client.kv import absent, get_op, on_lease, put_op
from registry_service.store.keys import Keyspace


def session_guard(
    keys: Keyspace, registration: Registration, opens_session: bool = False
) -> tuple[list[pb.Compare], list[pb.RequestOp]]:
    """A session's registration rides on the session's lease (D73): its key must name that
    lease, or be absent and be created on it (`opens_session`)."""
    if not registration.session:
        return [], []
    key = keys.session(registration.session, registration.ttl_seconds)
    lease = registration.lease_id
    if opens_session:
        return [absent(key)], [put_op(key, f"{lease:x}".encode(), lease)]
    return [on_lease(key, lease)], []


async def read_session_lease(
    client: EtcdClient, keys: Keyspace, session: str, ttl_seconds: int
) -> int:
    """The lease the session's registrations of this TTL share; 0 when it has none."""
    response = await client.kv.range(pb.RangeRequest(key=keys.session(session, ttl_seconds)))
    return int(response.kvs[0].lease) if response.kvs else 0


async def open_session_lease(
    client: EtcdClient, keys: Keyspace, session: str, ttl_seconds: int, lease_id: int
) -> int:
    """Makes lease_id the session's lease of this TTL unless it has one; the lease it has now."""
    key = keys.session(session, ttl_seconds)
    response = await client.kv.txn(
        pb.TxnRequest(
            compare=[absent(key)],
            success=[put_op(key, f"{lease_id:x}".encode(), lease_id)],
            failure=[get_op(key)],
        )
    )
    if response.succeeded:
        return lease_id
    kvs = response.responses[0].response_range.kvs
    return int(kvs[0].lease) if kvs else 0
