"""KeepAlive: renewing registrations, one or many at a time (D7, D47).

Each renewal is checked against the frontend's view (the key's registration and its token's
hash), then its etcd lease is renewed, with every other lease of the same message, over the
process's one LeaseKeepAlive stream. An etcd lease is renewed at most once per window
(`keepalive_coalesce_seconds`, or a sixth of the TTL when longer) however often clients ask; a
renewal inside the window is answered with the lease's remaining time. A renewal whose lease is
gone restores the member while its record exists (core/restoration.py, D20).

The flow is one way: the registry hands KeepAlive here; this asks the write gate
(core/write_gate.py) and the restoration, never the registry back.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from registry_service.core.registration_tokens import token_matches
from registry_service.core.restoration import Restoration
from registry_service.core.write_gate import WriteGate
from registry_service.domain import Limits, NodeKey, Registration
from registry_service.errors import (
    InvalidArgumentError,
    NodeNotFoundError,
    StoreUnavailableError,
    WrongDatacenterError,
)
from registry_service.failpoints import failpoint
from registry_service.hub.watch_hub import WatchHub
from registry_service.store.base import RegistryStore
from registry_service.validation import validate_key

_RENEWALS_KEPT = 100_000  # recent etcd renewals remembered for coalescing before a clean-up


def _as_exception(error: BaseException) -> Exception:
    """What answers one renewal of a batch: its own error; a cancellation is not an answer."""
    if isinstance(error, Exception):
        return error
    raise error


class Renewals:
    """Renews registrations for the registry; remembers each lease's last etcd renewal."""

    def __init__(
        self,
        store: RegistryStore,
        hub: WatchHub,
        limits: Limits,
        *,
        coalesce_seconds: float,
        gate: WriteGate,
        restoration: Restoration,
    ) -> None:
        """`gate`: which renewals this frontend takes (its datacenter's, while it reaches etcd);
        `restoration`: where a renewal whose lease is gone goes."""
        self._store = store
        self._hub = hub
        self._limits = limits
        self._coalesce = coalesce_seconds
        self._gate = gate
        self._restoration = restoration
        self._recent_renewals: dict[int, tuple[float, int]] = {}
        self._renewals_kept = _RENEWALS_KEPT

    def forget(self, lease_id: int) -> None:
        """The lease is gone (deregistered): nothing may be answered from its last renewal."""
        self._recent_renewals.pop(lease_id, None)

    async def keep_alive(self, key: NodeKey, token: str) -> int:
        """Renews a registration; returns the seconds it now has left.

        Raises:
            NodeNotFoundError: no live registration with this token (the caller re-registers).
        """
        (answer,) = await self.keep_alive_many(((key, token),))
        if isinstance(answer, Exception):
            raise answer
        return answer

    async def keep_alive_many(
        self, renewals: Sequence[tuple[NodeKey, str]]
    ) -> list[int | Exception]:
        """Renews several registrations at once (one KeepAlive message of a client that holds
        many); for each, the seconds it now has left, or the error that answers it
        (NodeNotFoundError: register again). Each etcd lease is renewed at most once per
        coalescing window (`_window`), however often clients ask: a renewal inside it is
        answered with the lease's remaining time."""
        self._gate.check_store()
        now = time.monotonic()
        answers: list[int | Exception] = [0] * len(renewals)
        due: dict[int, list[int]] = {}  # lease -> positions of the renewals it answers
        checks: list[tuple[int, NodeKey, str]] = []
        for position, (key, token) in enumerate(renewals):
            try:
                key = validate_key(key, self._limits)
                self._gate.check_datacenter(key)  # another datacenter's: its registry renews it
            except (InvalidArgumentError, WrongDatacenterError) as err:
                answers[position] = err
                continue
            registration = self._hub.registration(key)
            if registration is None or not token_matches(token, registration.token_hash):
                checks.append((position, key, token))  # the view may be behind etcd
                continue
            self._renew_or_coalesce(registration, position, now, answers, due)
        if checks:
            found = await asyncio.gather(
                *(self._live_registration(key, token) for _, key, token in checks),
                return_exceptions=True,
            )
            for (position, _, _), checked in zip(checks, found, strict=True):
                if isinstance(checked, BaseException):
                    answers[position] = _as_exception(checked)
                else:
                    self._renew_or_coalesce(checked, position, now, answers, due)
        if due:
            await self._renew_due(due, renewals, answers)
        return answers

    def _window(self, ttl_seconds: int) -> float:
        """How long after an etcd renewal of a lease another is answered from the first: the
        coalescing setting, or a sixth of the TTL when that is longer (a client renewing at
        TTL/3 always reaches etcd; one that renews far more often does not). 0: always etcd."""
        return max(self._coalesce, ttl_seconds / 6) if self._coalesce > 0 else 0.0

    def _renew_or_coalesce(
        self,
        registration: Registration,
        position: int,
        now: float,
        answers: list[int | Exception],
        due: dict[int, list[int]],
    ) -> None:
        lease_id = registration.lease_id
        recent = self._recent_renewals.get(lease_id)
        if recent is not None and now - recent[0] < self._window(registration.ttl_seconds):
            answers[position] = max(1, round(recent[1] - (now - recent[0])))
        else:
            due.setdefault(lease_id, []).append(position)

    async def _live_registration(self, key: NodeKey, token: str) -> Registration:
        stored = await self._store.read_node(key)
        registration = stored.registration
        if (
            registration is None
            or not stored.live
            or not token_matches(token, registration.token_hash)
        ):
            raise NodeNotFoundError(
                f"no live registration of {key} with this token; register again"
            )
        return registration

    async def _renew_due(
        self,
        due: dict[int, list[int]],
        renewals: Sequence[tuple[NodeKey, str]],
        answers: list[int | Exception],
    ) -> None:
        await failpoint("keep_alive.before_renew")
        leases = list(due)
        ttls = await self._store.renew_leases(leases)
        now = time.monotonic()
        if len(self._recent_renewals) > self._renewals_kept:
            self._forget_old_renewals(now)
        lapsed: list[int] = []
        for lease_id, ttl in zip(leases, ttls, strict=True):
            for position in due[lease_id]:
                if ttl is None:
                    answers[position] = StoreUnavailableError(
                        "etcd did not answer a lease renewal in time; retry"
                    )
                elif ttl <= 0:
                    lapsed.append(position)
                else:
                    answers[position] = ttl
            if ttl is not None and ttl > 0:
                self._recent_renewals[lease_id] = (now, ttl)
            else:
                self._recent_renewals.pop(lease_id, None)
        if lapsed:
            restored = await asyncio.gather(
                *(self._restoration.renewal(*renewals[position]) for position in lapsed),
                return_exceptions=True,
            )
            for position, answer in zip(lapsed, restored, strict=True):
                answers[position] = (
                    _as_exception(answer) if isinstance(answer, BaseException) else answer
                )

    def _forget_old_renewals(self, now: float) -> None:
        # No window is longer than a sixth of the longest TTL: older entries coalesce nothing.
        longest = max(self._coalesce, self._limits.ttl_max_seconds / 6)
        self._recent_renewals = {
            lease: entry
            for lease, entry in self._recent_renewals.items()
            if now - entry[0] < longest
        }
        # Many leases renewing for real: look again only once the map has doubled.
        self._renewals_kept = max(_RENEWALS_KEPT, 2 * len(self._recent_renewals))
