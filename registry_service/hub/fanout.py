"""Handing a change to every subscription a slice at a time (D46), the event loop running other
work between slices (Register replies never wait behind thousands of stream writes).

Contracts: one change at a time, oldest first, so every subscription gets its changes in order;
subscriptions held back by the push switch are skipped; equal scopes share one scoped message
(one filter pass and one serialization per scope).
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses

from registry_service.domain import DeltaMessage, Scope
from registry_service.hub.subscription import Subscription


@dataclasses.dataclass(slots=True)
class _Fanout:
    """A change being handed out slice by slice: to whom, how far, the scoped copies made."""

    message: DeltaMessage
    subscriptions: list[Subscription]
    next: int = 0
    scoped: dict[Scope, DeltaMessage | None] = dataclasses.field(default_factory=dict)

    def offer_slice(self, size: int) -> bool:
        """Offers the change to the next `size` subscriptions; True once all have had it."""
        end = self.next + size
        for subscription in self.subscriptions[self.next : end]:
            if subscription.held:
                continue
            scope = subscription.scope
            if scope not in self.scoped:
                self.scoped[scope] = self.message.within(scope)
            delivered = self.scoped[scope]
            if delivered is not None:
                subscription.offer(delivered)
        self.next = end
        return end >= len(self.subscriptions)


class SlicedFanout:
    """The changes being handed out, oldest first, `slice_subscribers` subscriptions per step."""

    def __init__(self, slice_subscribers: int) -> None:
        self._slice = max(1, slice_subscribers)
        self._pending: collections.deque[_Fanout] = collections.deque()
        self._driver: asyncio.Handle | None = None

    def push(self, message: DeltaMessage, subscriptions: list[Subscription]) -> None:
        """Hands `message` to `subscriptions` (the first slice at once when nothing is pending;
        the rest between other work)."""
        self._pending.append(_Fanout(message, subscriptions))
        if len(self._pending) == 1:
            self._step()

    def _step(self) -> None:
        self._driver = None
        if self._pending and self._pending[0].offer_slice(self._slice):
            self._pending.popleft()
        if self._pending:
            self._driver = asyncio.get_running_loop().call_soon(self._step)

    def published_revision(self, applied_revision: int) -> int:
        """Every subscription has been offered every change up to this revision
        (`applied_revision` when nothing is pending)."""
        return self._pending[0].message.revision - 1 if self._pending else applied_revision

    def cancel(self) -> None:
        """Drops whatever is pending (the hub is closing)."""
        if self._driver is not None:
            self._driver.cancel()
        self._pending.clear()
