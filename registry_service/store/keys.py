"""The keyspace of one cluster in etcd (docs/design.md §2), all under one prefix:

live/<dc>/<type>/<id>       on the node's lease: exists while the node renews
members/<dc>/<type>/<id>    the membership record (JSON): what watchers see
identity/<dc>/<type>/<id>   last incarnation of the id and how it last left (no lease); the records
                            of ids gone longer than identity_retention_seconds are collected
incarnation-floor           every collected identity's incarnation is at most this: an id without
                            an identity record registers above it (store/identity_collection.py)
flaps/<dc>/<type>/<id>      flap damping's penalty of the node, on the audit lease (or none)
election/evictor/<lease>    candidates for evictor; the lowest create revision leads
barrier/<frontend>          written to push a frontend's watch to etcd's current revision
audit/<dc>/<type>/<id>/<t>  one membership transition and its cause, on an expiring audit lease
frontends/<frontend>        a frontend's announcement, on its own lease (control.py)
switches/push               the push switch and its gray list (control.py)
operator-audit/<t>-<fe>     one operator action and who did it, on the audit lease
sessions/<session>/<ttl>    on the lease a client session's registrations of that TTL share
                            (D73): the lease is found there by any frontend
"""

from __future__ import annotations

import enum
import sys
from dataclasses import dataclass

from registry_service.domain import NodeKey


class KeyKind(enum.Enum):
    """The first path segment after the prefix: what a key is for."""

    LIVE = "live"
    MEMBER = "members"
    IDENTITY = "identity"
    FLAPS = "flaps"
    ELECTION = "election"
    BARRIER = "barrier"
    AUDIT = "audit"
    FRONTEND = "frontends"
    SWITCH = "switches"
    OPERATOR_AUDIT = "operator-audit"
    SESSION = "sessions"
    INCARNATION_FLOOR = "incarnation-floor"


# Kinds whose keys do not name a node.
_NOT_NODES = frozenset(
    {
        KeyKind.ELECTION,
        KeyKind.BARRIER,
        KeyKind.AUDIT,
        KeyKind.FRONTEND,
        KeyKind.SWITCH,
        KeyKind.OPERATOR_AUDIT,
        KeyKind.SESSION,
        KeyKind.INCARNATION_FLOOR,
    }
)
PUSH_SWITCH = "push"


@dataclass(frozen=True)
class Keyspace:
    """Builds and parses the keys of one cluster under `prefix` (the layout above)."""

    prefix: str

    def _node(self, kind: KeyKind, key: NodeKey) -> bytes:
        return f"{self.prefix}{kind.value}/{key.path}".encode()

    def live(self, key: NodeKey) -> bytes:
        """The node's live key: on its lease, present while it renews."""
        return self._node(KeyKind.LIVE, key)

    def member(self, key: NodeKey) -> bytes:
        """The node's membership record: what watchers see."""
        return self._node(KeyKind.MEMBER, key)

    def identity(self, key: NodeKey) -> bytes:
        """The node's identity record: last incarnation and how it left."""
        return self._node(KeyKind.IDENTITY, key)

    def flaps(self, key: NodeKey) -> bytes:
        """The node's flap record (damping's penalty, D103)."""
        return self._node(KeyKind.FLAPS, key)

    def audit(self, key: NodeKey, time_ns: int) -> bytes:
        """One audit record of the node; zero-padded nanoseconds keep key order by time."""
        return f"{self.prefix}{KeyKind.AUDIT.value}/{key.path}/{time_ns:020d}".encode()

    def audit_of(self, key: NodeKey) -> bytes:
        """The prefix of one node's audit records (oldest first in key order)."""
        return f"{self.prefix}{KeyKind.AUDIT.value}/{key.path}/".encode()

    @property
    def root(self) -> bytes:
        """The prefix itself: every key of the cluster is under it (the one watch)."""
        return self.prefix.encode()

    def of_kind(self, kind: KeyKind) -> bytes:
        """The prefix of every key of one kind (to read them all)."""
        return f"{self.prefix}{kind.value}/".encode()

    def election(self, name: str) -> bytes:
        """The prefix of the named election's candidate keys."""
        return f"{self.prefix}{KeyKind.ELECTION.value}/{name}/".encode()

    def barrier(self, frontend: str) -> bytes:
        """The frontend's barrier key, written to move its watch to now."""
        return f"{self.prefix}{KeyKind.BARRIER.value}/{frontend}".encode()

    def frontend(self, frontend: str) -> bytes:
        """The frontend's announcement key (on the frontend's lease)."""
        return f"{self.prefix}{KeyKind.FRONTEND.value}/{frontend}".encode()

    def switch(self, name: str) -> bytes:
        """The named operator switch (the push switch is `PUSH_SWITCH`)."""
        return f"{self.prefix}{KeyKind.SWITCH.value}/{name}".encode()

    def session(self, session: str, ttl_seconds: int) -> bytes:
        """The key that names the lease of a client session's registrations of one TTL."""
        return f"{self.prefix}{KeyKind.SESSION.value}/{session}/{ttl_seconds}".encode()

    @property
    def incarnation_floor(self) -> bytes:
        """The one key holding the incarnation floor of collected identities."""
        return f"{self.prefix}{KeyKind.INCARNATION_FLOOR.value}".encode()

    def operator_audit(self, time_ns: int, frontend: str) -> bytes:
        """One operator audit record; time first so that keys sort by time."""
        return f"{self.prefix}{KeyKind.OPERATOR_AUDIT.value}/{time_ns:020d}-{frontend}".encode()

    def name(self, raw: bytes) -> str:
        """What follows `<kind>/` in a key of this keyspace (a frontend's id, a switch's name)."""
        text = raw.decode(errors="replace")
        return text[len(self.prefix) :].partition("/")[2]

    def parse(self, raw: bytes) -> tuple[KeyKind, NodeKey | None] | None:
        """(kind, node key) for a key of this keyspace; node key None for non-node kinds."""
        text = raw.decode(errors="replace")
        if not text.startswith(self.prefix):
            return None
        kind_name, _, rest = text[len(self.prefix) :].partition("/")
        try:
            kind = KeyKind(kind_name)
        except ValueError:
            return None
        if kind in _NOT_NODES:
            return kind, None
        parts = rest.split("/")
        if len(parts) != 3 or not all(parts):
            return None
        # Interned: the member, live and identity keys of a node and its record then share one
        # string each (memory per node, docs/performance.md).
        return kind, NodeKey(*map(sys.intern, parts))
