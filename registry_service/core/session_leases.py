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
from collections.abc import Iterator

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


class OpeningClaim:
    """The right to open a session's lease while others of the session wait for it: settled with
    `opened(lease)`; left unsettled, the waiters try again themselves."""

    def __init__(self, leases: SessionLeases, key: tuple[str, int]) -> None:
        self._leases = leases
        self._key = key
        self.future: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    def opened(self, lease_id: int) -> int:
        """The session's lease is lease_id (remembered, and handed to every waiter)."""
        if lease_id:
            self._leases.remember(*self._key, lease_id)
        if not self.future.done():
            self.future.set_result(lease_id)
        return lease_id


class SessionLeases:
    """Finds, remembers and opens the leases of client sessions (one per session and TTL).

    One opening at a time per session and TTL in a frontend: a client that starts registers many
    nodes at once, and each first Register granting a lease of its own would lose all but one
    race for the session's key and start over (a fleet's restart would multiply its Registers'
    etcd round trips). The others wait for the one in flight."""

    def __init__(self, store: RegistryStore, remembered: int = _REMEMBERED) -> None:
        self._store = store
        self._leases: collections.OrderedDict[tuple[str, int], int] = collections.OrderedDict()
        self._remembered = remembered
        self._opening: dict[tuple[str, int], OpeningClaim] = {}

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

    async def known_or_opened(self, session: str, ttl_seconds: int) -> int:
        """The lease this frontend knows, or the one being opened now (waited for); 0 when
        neither: nothing is in flight, and the caller may claim the opening (`opening`) before
        it awaits anything.

        Raises:
            StoreUnavailableError: the opening in flight could not reach etcd.
        """
        return self.known(session, ttl_seconds) or await self._opened((session, ttl_seconds))

    async def _opened(self, key: tuple[str, int]) -> int:
        """The lease the opening in flight settles with, if any (0: none in flight). One that
        settles without a lease leaves it to the next caller."""
        for _ in range(_MAX_ATTEMPTS):
            claim = self._opening.get(key)
            if claim is None:
                return 0
            lease = await asyncio.shield(claim.future)
            if lease:
                return lease
        raise ConcurrentModificationError(
            "the lease of a client session failed to open several times; retry"
        )

    @contextlib.contextmanager
    def opening(self, session: str, ttl_seconds: int) -> Iterator[OpeningClaim]:
        """Claims the opening of the session's lease; callers of `known_or_opened` and `current`
        wait for it. Call only when `known_or_opened` said 0, with nothing awaited since. An
        etcd outage in the claim's block reaches the waiters too; any other way out without a
        lease lets one of them open it."""
        key = (session, ttl_seconds)
        assert key not in self._opening, "one opening at a time per session and TTL"
        claim = self._opening[key] = OpeningClaim(self, key)
        try:
            yield claim
        except StoreUnavailableError as err:
            if not claim.future.done():
                claim.future.set_exception(err)
                claim.future.exception()  # retrieved: the waiters, if any, raise it
            raise
        finally:
            claim.opened(0)  # a no-op once settled
            del self._opening[key]

    async def current(self, session: str, ttl_seconds: int, *, fresh: bool = False) -> int:
        """The session's lease of this TTL: remembered (unless `fresh`), found in etcd, or
        granted and opened now. Concurrent callers for one session share one opening."""
        lease = 0 if fresh else self.known(session, ttl_seconds)
        lease = lease or await self._opened((session, ttl_seconds))
        if lease:
            return lease
        with self.opening(session, ttl_seconds) as claim:
            return claim.opened(await self.find_or_open(session, ttl_seconds))

    async def find_or_open(self, session: str, ttl_seconds: int) -> int:
        """The session's lease as etcd has it, opened on a new lease when it has none (call
        under a claim: `opening`)."""
        lease = await self._store.read_session_lease(session, ttl_seconds)
        for _ in range(_MAX_ATTEMPTS):
            if lease:
                return lease
            granted = await self._store.grant_lease(ttl_seconds)
            lease = await self._store.open_session_lease(session, ttl_seconds, granted)
            if lease != granted:  # another frontend opened it first (or it vanished): not ours
                with contextlib.suppress(StoreUnavailableError):
                    await self._store.revoke_lease(granted)
        raise ConcurrentModificationError(
            "the lease of a client session kept changing while it was opened; retry"
        )
