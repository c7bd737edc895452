"""The frontend's garbage-collection policy: no automatic full collections, one on a timer."""

from __future__ import annotations

import asyncio
import gc
import weakref

from registry_service.process.gc_policy import collect_every, take_full_collections_off_the_hot_path
from tests.support.waiting import eventually


class _Node:
    def __init__(self) -> None:
        self.partner: _Node | None = None


async def test_full_collections_move_to_a_timer_that_still_frees_cycles():
    thresholds = gc.get_threshold()
    try:
        take_full_collections_off_the_hot_path()
        assert gc.get_threshold()[:2] == thresholds[:2]  # young collections as before
        assert gc.get_threshold()[2] >= 2**30  # full ones never automatic
        assert gc.get_freeze_count() > 0  # what was alive at start is left out

        a, b = _Node(), _Node()
        a.partner, b.partner = b, a  # a cycle: reference counting alone never frees it
        gone = weakref.ref(a)
        gc.collect()  # the cycle survives into the oldest generation
        del a, b
        gc.collect(1)  # young collections do not look there
        assert gone() is not None
        timer = asyncio.create_task(collect_every(0.01))
        try:
            await eventually(lambda: gone() is None, timeout=10, message="cycle collected")
        finally:
            timer.cancel()
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()
