"""etcd's key-values as the store's changes (store/base.py): a member record, a live key or an
identity as a StoreChange, the push switch or a frontend's announcement as a ControlChange. The
etcd store reads its watch and its initial load through these; an unreadable value is logged
and left out, never guessed around.
"""

from __future__ import annotations

import logging

from registry_service.control import PushSwitch
from registry_service.store._etcdpb import rpc_pb2 as pb
from registry_service.store.base import (
    ControlChange,
    FrontendChanged,
    IdentityPut,
    LiveChanged,
    Member,
    MemberDeleted,
    MemberPut,
    StoreChange,
    SwitchChanged,
)
from registry_service.store.control_records import decode_announcement, decode_push_switch
from registry_service.store.keys import PUSH_SWITCH, KeyKind, Keyspace
from registry_service.store.records import RecordError, decode_identity, decode_registration

log = logging.getLogger(__name__)


def to_change(keys: Keyspace, kv: pb.KeyValue, *, deleted: bool) -> StoreChange | None:
    """A member, live or identity key's put or delete; None for any other key."""
    parsed = keys.parse(kv.key)
    if parsed is None:
        return None
    kind, key = parsed
    if key is None:
        return None
    try:
        if kind is KeyKind.MEMBER:
            if deleted:
                return MemberDeleted(key)
            return MemberPut(key, Member(decode_registration(kv.value), int(kv.mod_revision)))
        if kind is KeyKind.LIVE:
            return LiveChanged(key, alive=not deleted)
        if kind is KeyKind.IDENTITY and not deleted:
            return IdentityPut(key, decode_identity(kv.value))
    except RecordError as err:
        log.warning("ignoring unreadable value of %s: %s", kv.key.decode(errors="replace"), err)
    return None


def to_control(
    keys: Keyspace, kind: KeyKind, kv: pb.KeyValue, *, deleted: bool
) -> ControlChange | None:
    """The push switch's or a frontend announcement's put or delete; None for any other key."""
    name = keys.name(kv.key)
    try:
        if kind is KeyKind.SWITCH and name == PUSH_SWITCH:
            return SwitchChanged(PushSwitch() if deleted else decode_push_switch(kv.value))
        if kind is KeyKind.FRONTEND and name:
            return FrontendChanged(name, None if deleted else decode_announcement(kv.value))
    except RecordError as err:
        log.warning("ignoring unreadable value of %s: %s", kv.key.decode(errors="replace"), err)
    return None
