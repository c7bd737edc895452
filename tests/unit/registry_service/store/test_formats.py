from registry_service.domain import Identity, Node, NodeKey, NodeStatus, Registration, RemovalReason
from registry_service.store._etcdpb import rpc_pb2 as pb
from registry_service.store.etcd_client.kv import prefix_end
from registry_service.store.etcd_client.watch import group_by_revision
from registry_service.store.keys import KeyKind, Keyspace
from registry_service.store.records import (
    decode_identity,
    decode_registration,
    encode_identity,
    encode_registration,
)


def test_keyspace_round_trips_node_keys_and_ignores_foreign_ones():
    keys = Keyspace("/noderegistry/c1/")
    key = NodeKey("dc1", "data", "n.1")
    assert keys.member(key) == b"/noderegistry/c1/members/dc1/data/n.1"
    assert keys.parse(keys.member(key)) == (KeyKind.MEMBER, key)
    assert keys.parse(keys.live(key)) == (KeyKind.LIVE, key)
    assert keys.parse(keys.barrier("f1")) == (KeyKind.BARRIER, None)
    assert keys.parse(b"/noderegistry/c2/members/dc1/data/n") is None
    assert keys.parse(b"/noderegistry/c1/members/dc1/data") is None
    assert keys.parse(b"/noderegistry/c1/other/x/y/z") is None


def test_records_round_trip():
    registration = Registration(
        node=Node("n", "data", "dc", "h:1", {"a": "b"}, 3, NodeStatus.DRAINING),
        lease_id=0x7FFF_0000_1234,
        ttl_seconds=10,
        token_hash="ab" * 32,
        idempotency_hash="cd" * 32,
        sealed_token="ef" * 43,
    )
    assert decode_registration(encode_registration(registration)) == registration
    identity = Identity(4, RemovalReason.EXPIRED)
    assert decode_identity(encode_identity(identity)) == identity
    assert decode_identity(encode_identity(Identity(1))) == Identity(1)


def test_prefix_end_covers_exactly_the_prefix():
    assert prefix_end(b"/a/") == b"/a0"
    assert prefix_end(b"a\xff") == b"b"
    assert prefix_end(b"\xff\xff") == b"\0"


def test_watch_events_are_grouped_per_revision_in_order():
    def event(revision: int, key: bytes) -> pb.Event:
        return pb.Event(kv=pb.KeyValue(key=key, mod_revision=revision))

    batches = group_by_revision([event(5, b"a"), event(5, b"b"), event(7, b"c"), event(8, b"d")])
    assert [(b.revision, [e.kv.key for e in b.events]) for b in batches] == [
        (5, [b"a", b"b"]),
        (7, [b"c"]),
        (8, [b"d"]),
    ]
