"""Waiting on conditions, never on fixed sleeps."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def eventually(
    predicate: Callable[[], T | Awaitable[T]],
    timeout: float = 10.0,
    interval: float = 0.02,
    message: str = "",
) -> T:
    """Returns the first truthy value of predicate(); fails after timeout with the last value."""
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        result = predicate()
        if asyncio.iscoroutine(result) or isinstance(result, Awaitable):
            result = await result
        if result:
            return result  # type: ignore[return-value]
        last = result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s: {message} (last: {last!r})")
        await asyncio.sleep(interval)


async def next_message(stream: object, timeout: float = 10.0) -> object:
    """Reads one message of a grpc.aio stream call, failing after timeout."""
    return await asyncio.wait_for(stream.read(), timeout)  # type: ignore[attr-defined]


def eventually_sync(predicate: Callable[[], T], timeout: float = 10.0, message: str = "") -> T:
    """eventually() for synchronous code (the sync facade's tests run in a worker thread)."""
    import time as _time

    deadline = _time.monotonic() + timeout
    while not (result := predicate()):
        if _time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s: {message}")
        _time.sleep(0.02)
    return result
