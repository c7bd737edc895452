"""The leases that a client session's registrations share (D73).

A client (the SDK's `RegistryClient`) renews all its registrations together, one message per
tick; when they each had an etcd lease, that one message still cost the frontend one etcd
LeaseKeepAlive request and answer per registration. Registrations that name a session in their
Register instead ride on one lease per (session, TTL), as ZooKeeper's ephemeral nodes share their
session and etcd's `concurrency.Session` shares its lease: one etcd renewal per client and tick,
and a Register inside a known session needs one etcd round trip (the transaction), not two.

Frontends are stateless, and a session fails over from one to another, so the session's lease is
found in etcd: `sessions/<session>/<ttl>` lives on it (it goes when the lease goes). Each frontend
remembers the leases it has seen; every write of a session's registration is guarded by that key
naming the lease it puts the registration on, so a remembered lease that has lapsed is found out
by the write itself and forgotten.

A session's name is the client's session id hashed with the caller's identity (token, certificate
or address), so that a client can never put its registrations on a lease of someone else's.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import hashlib

from registry_service.errors import (
    ConcurrentModificationError,
    InvalidArgumentError,
    StoreUnavailableError,
)
from registry_service.store.base import RegistryStore

_REMEMBERED = 100_000  # (session, TTL) leases a frontend remembers, least recently used forgotten
_MAX_ATTEMPTS = 8
SESSION_ID_MAX_LENGTH = 128


def session_name(owner: str, session_id: str) -> str:
    """The name of a client's session in etcd: its id, hashed with the caller's identity ("" when
    the Register names no session).

    Raises:
        InvalidArgumentError: a session id longer than SESSION_ID_MAX_LENGTH.
    """
    if not session_id:
        return ""
    if len(session_id) > SESSION_ID_MAX_LENGTH:
        raise InvalidArgumentError(
            f"session is {len(session_id)} characters; the limit is {SESSION_ID_MAX_LENGTH}"
        )
    return hashlib.sha256(f"{owner}\0{session_id}".encode()).hexdigest()[:32]


class SessionLeases:
    """Finds, remembers and opens the leases of client sessions (one per session and TTL)."""

    def __init__(self, store: RegistryStore, remembered: int = _REMEMBERED) -> None:
        self._store = store
        self._leases: collections.OrderedDict[tuple[str, int], int] = collections.OrderedDict()
        self._remembered = remembered
        self._opening: dict[tuple[str, int], asyncio.Future[int]] = {}

    def known(self, session: str, ttl_seconds: int) -> int:
        """The session's lease as this frontend last saw it; 0 if it knows none."""
        lease = self._leases.get((session, ttl_seconds), 0)
        if lease:
            self._leases.move_to_end((session, ttl_seconds))
        return lease

    def remember(self, session: str, ttl_seconds: int, lease_id: int) -> None:
        self._leases[(session, ttl_seconds)] = lease_id
        self._leases.move_to_end((session, ttl_seconds))
        while len(self._leases) > self._remembered:
            self._leases.popitem(last=False)

    def forget(self, session: str, ttl_seconds: int, lease_id: int) -> None:
        """A write found that the session's key no longer names lease_id (it lapsed)."""
        if self._leases.get((session, ttl_seconds)) == lease_id:
            del self._leases[(session, ttl_seconds)]

    async def current(self, session: str, ttl_seconds: int, *, fresh: bool = False) -> int:
        """The session's lease of this TTL: remembered (unless `fresh`), found in etcd, or
        granted and opened now. Concurrent callers for one session share one lookup."""
        lease = 0 if fresh else self.known(session, ttl_seconds)
        if lease:
            return lease
        opening = self._opening.get((session, ttl_seconds))
        if opening is not None:
            return await asyncio.shield(opening)
        opening = asyncio.get_running_loop().create_future()
        self._opening[(session, ttl_seconds)] = opening
        try:
            lease = await self._find_or_open(session, ttl_seconds)
            opening.set_result(lease)
            return lease
        except BaseException as err:
            opening.set_exception(err)
            opening.exception()  # retrieved: the waiters, if any, raise it
            raise
        finally:
            del self._opening[(session, ttl_seconds)]

    async def _find_or_open(self, session: str, ttl_seconds: int) -> int:
        lease = await self._store.read_session_lease(session, ttl_seconds)
        for _ in range(_MAX_ATTEMPTS):
            if lease:
                self.remember(session, ttl_seconds, lease)
                return lease
            granted = await self._store.grant_lease(ttl_seconds)
            lease = await self._store.open_session_lease(session, ttl_seconds, granted)
            if lease != granted:  # another frontend opened it first (or it vanished): not ours
                with contextlib.suppress(StoreUnavailableError):
                    await self._store.revoke_lease(granted)
        raise ConcurrentModificationError(
            "the lease of a client session kept changing while it was opened; retry"
        )
