"""Between the sync facade's event loop, in a thread of its own, and the threads that call it.

The async client lives on that loop; a caller's thread hands it coroutines and waits for their
results (`LoopThread.run`), callbacks run in the loop's thread (`start_pump`), and a `SyncStream`
carries a watch's events or a registration's states over a thread-safe queue to a blocking `for`.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any, Generic, TypeVar

from client_sdk._closing import Closing
from client_sdk._errors import RegistryError

T = TypeVar("T")
log = logging.getLogger("client_sdk")
_END = object()


class LoopThread:
    """An event loop running in a daemon thread until `stop()`."""

    def __init__(self, name: str) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=name, daemon=True)
        self._thread.start()

    @property
    def running(self) -> bool:
        return self._loop.is_running()

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Runs `coroutine` on the loop and waits for its result (or its exception).

        Raises:
            RegistryError: the loop was stopped (the client is closed).
        """
        if not self._loop.is_running():
            coroutine.close()
            raise RegistryError("the SyncRegistryClient is closed")
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    def call_soon(self, callback: Callable[[], object]) -> None:
        """Schedules `callback` on the loop, from any thread; nothing once the loop stopped."""
        if self._loop.is_running():
            self._loop.call_soon_threadsafe(callback)

    def stop(self, timeout: float = 10.0) -> None:
        if self._loop.is_running():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout)
            self._loop.close()


async def _pump(source: AsyncIterator[T], sink: Callable[[T], object], what: str) -> None:
    async for item in source:
        try:
            sink(item)
        except Exception:
            log.exception("%s callback failed", what)


def start_pump(
    source: AsyncIterator[T], sink: Callable[[T], object], what: str
) -> asyncio.Task[None]:
    """Hands every item of `source` to `sink` in the loop's thread, until the source ends.

    Call it in the loop. A failing sink is logged and never ends the pump.
    """
    return asyncio.create_task(_pump(source, sink, what), name=f"pump-{what}")


class SyncStream(Closing, Generic[T]):
    """A blocking iterator over a watch's events or a registration's states.

    `for item in stream:` blocks until the next item; it ends when its source ends (the watch or
    the registration closed) or when the stream is closed. With `timeout_seconds`, waiting longer
    than that for one item raises TimeoutError. Use it as `with watch.events() as events:` or
    `close()` it when done.
    """

    def __init__(
        self,
        loop: LoopThread,
        subscribe: Callable[[], AsyncIterator[T]],
        timeout_seconds: float | None = None,
    ) -> None:
        self._loop = loop
        self._items: queue.Queue[object] = queue.Queue()
        self._timeout = timeout_seconds
        self._task = loop.run(self._start(subscribe))

    async def _start(self, subscribe: Callable[[], AsyncIterator[T]]) -> asyncio.Task[None]:
        source = subscribe()  # subscribed now, in the loop: nothing after this call is missed
        return asyncio.create_task(self._forward(source), name="sync-stream")

    async def _forward(self, source: AsyncIterator[T]) -> None:
        try:
            await _pump(source, self._items.put, "sync stream")
        finally:
            self._items.put(_END)

    def __iter__(self) -> SyncStream[T]:
        return self

    def __next__(self) -> T:
        try:
            item = self._items.get(timeout=self._timeout)
        except queue.Empty:
            raise TimeoutError(f"nothing arrived within {self._timeout}s") from None
        if item is _END:
            self._items.put(_END)  # every later call ends too
            raise StopIteration
        return item  # type: ignore[return-value]  # only T and _END are ever queued

    def close(self) -> None:
        """Stops the stream; a thread blocked in it gets the end after what it holds."""
        self._loop.call_soon(self._task.cancel)
        self._items.put(_END)
