"""Which frontend probes which node: rendezvous (highest random weight) hashing of node keys over
the frontends announced in etcd (docs/design.md §13). Pure, no I/O.

Every frontend computes the same owner for a node from the same announcements, so each node is
probed by one frontend at a time without any coordination. When a frontend leaves, only its own
nodes move (each to the frontend that scores next highest for it); when one joins, it takes from
each of the others about its share, and nothing else moves.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from registry_service.domain import NodeKey


def score(frontend: str, key: NodeKey) -> int:
    """The frontend's weight for the node: a 64-bit hash of both, the same on every frontend."""
    digest = hashlib.blake2b(f"{frontend}\n{key.path}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def owner(key: NodeKey, frontends: Iterable[str]) -> str | None:
    """The frontend that probes the node: the one that scores highest (ties: the larger id);
    None when no frontend is announced."""
    return max(frontends, key=lambda frontend: (score(frontend, key), frontend), default=None)


class Owners:
    """Owners of nodes over one set of frontends, remembered per node until the set changes
    (hashing every node again on every look would cost more than the probes)."""

    def __init__(self) -> None:
        self._frontends: tuple[str, ...] = ()
        self._owners: dict[NodeKey, str | None] = {}

    def use(self, frontends: Iterable[str]) -> bool:
        """Takes the announced frontends; True when they changed (every owner is recomputed)."""
        current = tuple(sorted(frontends))
        if current == self._frontends:
            return False
        self._frontends = current
        self._owners.clear()
        return True

    @property
    def frontends(self) -> tuple[str, ...]:
        """The announced frontends the share was last computed over."""
        return self._frontends

    def of(self, key: NodeKey) -> str | None:
        """The node's owner among the frontends last given to `use`."""
        found = self._owners.get(key, "")
        if found == "":
            found = self._owners[key] = owner(key, self._frontends)
        return found

    def forget_except(self, keys: set[NodeKey]) -> None:
        """Drops what is remembered of nodes outside `keys` (members that left)."""
        if len(self._owners) > 2 * len(keys):
            self._owners = {key: value for key, value in self._owners.items() if key in keys}
