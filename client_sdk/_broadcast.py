"""One publisher, many readers, each with a queue of its own.

What a watch's events and a registration's states are carried by.

A subscription is filled from the moment it is created, not from its first read: an async
generator would miss what is published in between (decision D14). The broadcast holds its
subscriptions until they are closed or it ends (held weakly, a subscription awaited by a task
nobody references would be collected with that task).
"""

from __future__ import annotations

import asyncio
from typing import Generic, TypeVar

T = TypeVar("T")
_END = object()


class Broadcast(Generic[T]):
    """Hands every published item to every open subscription; `end()` ends them all."""

    def __init__(self) -> None:
        self._subscriptions: set[Subscription[T]] = set()
        self.ended = False

    def publish(self, item: T) -> None:
        for subscription in list(self._subscriptions):
            subscription._put(item)

    def end(self) -> None:
        """Every subscription ends after the items it holds; later ones end at once."""
        self.ended = True
        for subscription in list(self._subscriptions):
            subscription.close()

    def _add(self, subscription: Subscription[T]) -> None:
        self._subscriptions.add(subscription)

    def _discard(self, subscription: Subscription[T]) -> None:
        self._subscriptions.discard(subscription)


class Subscription(Generic[T]):
    """An async iterator of what a `Broadcast` publishes from the moment this was created.

    It ends when the broadcast ends or when it is closed; `close()` it when no longer needed.
    """

    def __init__(self, broadcast: Broadcast[T]) -> None:
        self._queue: asyncio.Queue[object] = asyncio.Queue()
        self._broadcast = broadcast
        self._closed = False
        if broadcast.ended:
            self.close()
        else:
            broadcast._add(self)

    def __aiter__(self) -> Subscription[T]:
        return self

    async def __anext__(self) -> T:
        item = await self._queue.get()
        if item is _END:
            self._queue.put_nowait(_END)  # every later read ends too
            raise StopAsyncIteration
        return item  # type: ignore[return-value]  # only T and _END are ever queued

    def close(self) -> None:
        """Stops receiving; a reader waiting on it (or reading later) gets the end."""
        if not self._closed:
            self._closed = True
            self._broadcast._discard(self)
            self._queue.put_nowait(_END)

    def _put(self, item: T) -> None:
        if not self._closed:
            self._queue.put_nowait(item)
