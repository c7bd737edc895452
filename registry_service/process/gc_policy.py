"""Keeps CPython's full garbage collections off the fan-out path.

A full (generation 2) collection walks every tracked object: with a thousand subscribers it took
40-90 ms, every few seconds, and stalled every stream meanwhile (the fan-out tail,
docs/performance.md). A frontend's heap is mostly long-lived (modules, the member list, open
streams) and what dies, dies by reference counting; only reference cycles need the collector.
So automatic full collections are off, and one runs on a timer instead; young collections are
untouched. What is alive at start is frozen out of every collection.
"""

from __future__ import annotations

import asyncio
import gc

_NEVER = 2**30  # young collections between two automatic full ones: never, in practice


def take_full_collections_off_the_hot_path() -> None:
    """Freezes what is alive now and turns automatic full collections off (`collect_every` runs
    them)."""
    gc.freeze()
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, _NEVER)


async def collect_every(seconds: float) -> None:
    """Runs a full collection every `seconds` (reference cycles wait at most that long)."""
    while True:
        await asyncio.sleep(seconds)
        gc.collect()
