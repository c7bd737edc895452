"""The blocking read's wait (core/reads.py, D50) over a fake hub: it answers when the scope
changes after the index (locally or in a followed datacenter), when the wait ends, or when its
caller interrupts it; and a change applied between the look that found the scope unchanged and
the wait still wakes it (the lost wake-up)."""

from __future__ import annotations

import asyncio

from registry_service.core.reads import Reads, ScopeIndex
from registry_service.domain import (
    Consistency,
    DatacenterNodes,
    EventType,
    Node,
    NodeEvent,
    NodeList,
    Scope,
)
from registry_service.hub.remote_view import RemoteViews

SCOPE = Scope()


class FakeView:
    def __init__(self, hub: FakeHub) -> None:
        self._hub = hub

    def scope_revision(self, scope: Scope) -> int:
        self._hub.looks += 1
        if self._hub.on_look is not None:
            self._hub.on_look()
        return self._hub.revision


class FakeHub:
    """A view whose scope changes when the test says (`change`), with the change event of
    WatchHub.next_change: set by the next change, then replaced."""

    def __init__(self, revision: int = 10) -> None:
        self.revision = revision
        self.stale = False
        self.looks = 0
        self.on_look: object = None
        self.view = FakeView(self)
        self._next = asyncio.Event()

    def change(self, revision: int) -> None:
        self.revision = revision
        self._next.set()
        self._next = asyncio.Event()

    def next_change(self) -> asyncio.Event:
        return self._next

    def node_list(self, scope: Scope) -> NodeList:
        return NodeList(self.revision, (DatacenterNodes("dc1", self.revision, ()),))


def reads(hub: FakeHub, remotes: RemoteViews | None = None) -> Reads:
    return Reads(None, hub, remotes=remotes)  # type: ignore[arg-type]


async def test_a_change_after_the_index_answers_the_wait():
    hub = FakeHub()
    reading = reads(hub)
    assert reading.scope_index(SCOPE) == ScopeIndex(10)
    waiting = asyncio.create_task(reading.wait_for_change(SCOPE, ScopeIndex(10), 30))
    await asyncio.sleep(0)  # the read looked, found nothing new, and waits
    assert reading.waiting == 1
    hub.change(11)
    assert await asyncio.wait_for(waiting, 10) is True
    assert reading.waiting == 0


async def test_a_change_between_the_look_and_the_wait_still_wakes_it():
    hub = FakeHub()
    loop = asyncio.get_running_loop()

    def change_right_after_the_first_look() -> None:
        hub.on_look = None
        loop.call_soon(hub.change, 11)  # runs before any task the read may start

    hub.on_look = change_right_after_the_first_look
    # Woken by that change, not by the end of its wait (nothing else would wake it).
    woke = await asyncio.wait_for(reads(hub).wait_for_change(SCOPE, ScopeIndex(10), 600), 10)
    assert woke is True
    assert hub.looks == 2  # looked, waited on the event of that step, woke, looked again


async def test_an_index_already_behind_answers_at_once():
    hub = FakeHub(revision=12)
    assert await reads(hub).wait_for_change(SCOPE, ScopeIndex(11), 30) is True
    assert hub.looks == 1


async def test_the_wait_ends_unchanged_and_the_caller_may_interrupt_it():
    hub = FakeHub()
    reading = reads(hub)
    assert await reading.wait_for_change(SCOPE, ScopeIndex(10), 0.01) is False
    closing = asyncio.Event()
    waiting = asyncio.create_task(
        reading.wait_for_change(SCOPE, ScopeIndex(10), 30, interrupt=closing)
    )
    await asyncio.sleep(0)
    closing.set()  # the HTTP port closes: blocking reads answer at once
    assert await asyncio.wait_for(waiting, 10) is False
    assert reading.waiting == 0 and hub.revision == 10


async def test_a_followed_datacenter_moving_wakes_a_read_whose_scope_takes_it():
    hub = FakeHub()
    remotes = RemoteViews(["dc2"])
    far = Node("f1", "data", "dc2", "f1:1", {}, 1)
    remotes.load("dc2", [far], 500, 480)
    reading = reads(hub, remotes)
    index = reading.scope_index(SCOPE)
    assert index == ScopeIndex(10, {"dc2": 480})
    outside = Scope(datacenters=frozenset({"dc1"}))
    assert reading.scope_index(outside) == ScopeIndex(10)
    waiting = asyncio.create_task(reading.wait_for_change(SCOPE, index, 30))
    await asyncio.sleep(0)
    remotes.progress("dc2", 501, stale=False, age_seconds=0.0)  # heard, but nothing changed
    await asyncio.sleep(0)
    assert not waiting.done()
    far2 = Node("f2", "data", "dc2", "f2:1", {}, 1)
    remotes.delta("dc2", [NodeEvent(EventType.ADDED, far2)], 502, relisted=False)
    assert await asyncio.wait_for(waiting, 10) is True
    assert reading.scope_index(SCOPE) == ScopeIndex(10, {"dc2": 502})


async def test_a_blocking_get_nodes_answers_the_list_as_it_is_after_the_change():
    hub = FakeHub()
    reading = reads(hub)
    answer = asyncio.create_task(
        reading.get_nodes_blocking(SCOPE, Consistency.CACHED, ScopeIndex(10), 30)
    )
    await asyncio.sleep(0)
    hub.change(13)
    listing = await asyncio.wait_for(answer, 10)
    assert listing.revision == 13
