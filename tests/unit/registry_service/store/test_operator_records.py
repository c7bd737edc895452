"""Operator state as stored in etcd: new fields are optional, old records still decode."""

from __future__ import annotations

import json

import pytest

from registry_service.control import Announcement, HeldScope, OperatorEntry, PushSwitch
from registry_service.domain import (
    AuditCause,
    AuditEntry,
    Identity,
    Node,
    NodeKey,
    NodeStatus,
    Override,
    Registration,
    RemovalReason,
)
from registry_service.store.control_records import (
    decode_announcement,
    decode_operator_entry,
    decode_push_switch,
    encode_announcement,
    encode_operator_entry,
    encode_push_switch,
)
from registry_service.store.keys import KeyKind, Keyspace
from registry_service.store.records import (
    RecordError,
    decode_audit,
    decode_identity,
    decode_registration,
    encode_audit,
    encode_identity,
    encode_registration,
)

NODE = Node("n1", "data", "dc1", "h:1", {}, 2, NodeStatus.OUT_OF_SERVICE)


def test_an_override_round_trips_in_the_member_record():
    override = Override(NodeStatus.OUT_OF_SERVICE, NodeStatus.DRAINING, "token:ops", 1700.5)
    registration = Registration(NODE, 7, 10, "ab" * 32, override=override)
    raw = encode_registration(registration)
    assert decode_registration(raw) == registration
    assert json.loads(raw)["status"] == "OUT_OF_SERVICE"  # what etcdctl and old readers see


def test_a_member_record_written_before_overrides_still_decodes():
    old = b'{"v":1,"id":"n1","type":"data","datacenter":"dc1","address":"h:1","metadata":{},'
    old += b'"incarnation":2,"status":"UP","lease":"7","ttl":10,"token_sha256":"x"}'
    registration = decode_registration(old)
    assert registration.override is None and registration.node.status is NodeStatus.UP
    assert "override" not in json.loads(encode_registration(registration))  # written when set


def test_an_eviction_hold_round_trips_and_old_identities_have_none():
    held = Identity(3, RemovalReason.EVICTED, hold_until=1800.25, held_by="cert:alice")
    assert decode_identity(encode_identity(held)) == held
    old = decode_identity(b'{"v":1,"incarnation":3,"removed":"EVICTED"}')
    assert old == Identity(3, RemovalReason.EVICTED) and old.hold_until == 0


def test_audit_entries_carry_the_operator_when_there_is_one():
    key = NodeKey("dc1", "data", "n1")
    entry = AuditEntry(key, AuditCause.OPERATOR_OUT_OF_SERVICE, 2, 5.0, "fe", 0, "", "token:ops")
    assert decode_audit(key, encode_audit(entry), 9).operator == "token:ops"
    plain = AuditEntry(key, AuditCause.REGISTERED, 1, 5.0, "fe")
    assert "operator" not in json.loads(encode_audit(plain))
    assert decode_audit(key, encode_audit(plain), 9).operator == ""


def test_the_push_switch_round_trips_with_its_gray_list():
    switch = PushSwitch(
        enabled=True,
        held_scopes=(HeldScope("dc1", "data"), HeldScope("", "meta")),
        held_networks=("10.1.0.0/16",),
        changed_by="token:ops",
        changed_at=12.5,
    )
    assert decode_push_switch(encode_push_switch(switch)) == switch
    assert decode_push_switch(b'{"v":1,"enabled":false}') == PushSwitch(enabled=False)
    with pytest.raises(RecordError):
        decode_push_switch(b'{"v":1}')


def test_announcements_and_operator_entries_round_trip():
    announcement = Announcement(
        "fe-1", "host", 42, 1, 2, "10.0.0.5:50051", "http://10.0.0.5:9090", "0.1.0", 100.0, 7
    )
    assert decode_announcement(encode_announcement(announcement)) == announcement
    entry = OperatorEntry("push.off", "token:ops", 3.5, "fe-1", "", "off")
    assert decode_operator_entry(encode_operator_entry(entry), 12) == OperatorEntry(
        "push.off", "token:ops", 3.5, "fe-1", "", "off", 12
    )


def test_operator_keys_are_not_node_keys():
    keys = Keyspace("/noderegistry/c1/")
    assert keys.parse(keys.switch("push")) == (KeyKind.SWITCH, None)
    assert keys.parse(keys.frontend("fe-1")) == (KeyKind.FRONTEND, None)
    assert keys.name(keys.frontend("fe-1")) == "fe-1"
    assert keys.parse(keys.operator_audit(5, "fe-1")) == (KeyKind.OPERATOR_AUDIT, None)
    assert keys.operator_audit(5, "fe-1") < keys.operator_audit(6, "fe-0")  # time order
