"""This frontend's share of the registry-run health checks (docs/design.md §13).

The live frontends share the probing by rendezvous hashing of node keys over the frontends
announced in etcd (core/rendezvous.py): every frontend computes the same owner for each node,
so each node is probed by one frontend at a time. When the announcements change (a frontend
leaves, its lease gone within one TTL, or joins), each frontend looks again within
`_RECONCILE_SECONDS` of seeing it and takes or drops its nodes; only the nodes of the frontend
that left, or those the new one takes, move.

Contracts:
- Async, no thread and no task per node: one scheduler walks a heap of due probes and starts
  each as a task, at most `concurrency` at once; a probe due while all slots are busy waits.
- A probe's result counts toward its check's thresholds (core/check_state.py); a change of the
  node's health over its checks is written (core/health_writes.py), through flap damping, by
  one write at a time per node. What a write fails on (etcd away) is retried while the node is
  still this frontend's.
- A damped node (with checks or not: a crash loop of registrations damps a node without
  checks) is looked at again by its owner when its penalty should have decayed, and released.
- Nothing here removes a node or touches its lease.
- The probing itself (gRPC, HTTP, TCP) is the `Prober` handed in (registry_service/probes/):
  the core knows no transport.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from registry_service.core.check_state import (
    CheckState,
    ProbeResult,
    check_target,
    combined,
    describe_check,
    starting_health,
)
from registry_service.core.damping import DampingPolicy
from registry_service.core.health_writes import HealthWriter
from registry_service.core.rendezvous import Owners
from registry_service.domain import (
    Check,
    CheckKind,
    Health,
    NodeKey,
    NodeStatus,
    Registration,
    Scope,
)
from registry_service.errors import RegistryError
from registry_service.hub.operator_state import OperatorView
from registry_service.hub.watch_hub import WatchHub
from registry_service.retry import Backoff, ThrottledLog
from registry_service.store.base import RegistryStore

log = logging.getLogger(__name__)

# How soon after a change of members or announcements this frontend looks again for the nodes
# it owns (at most this often: a registration storm does not make it look at every revision).
_RECONCILE_SECONDS = 0.5
# A look with no change seen in between, to catch what a missed wake-up would leave.
_IDLE_RECONCILE_SECONDS = 5.0
# A damped node is looked at this long after its penalty should have decayed (clock rounding).
_RELEASE_SLACK_SECONDS = 0.05
_RELEASE = -1  # the heap entry of a damped node's release, not of a check


class Prober(Protocol):
    """Runs probes (registry_service/probes/ on the network; fakes in tests)."""

    async def probe(self, check: Check, address: str) -> ProbeResult:
        """Probes `check` of a node at `address` once, within the check's timeout; never
        raises for what the probe finds (a refused connection is a failed probe)."""

    def keep_only(self, targets: set[str]) -> None:
        """The `host:port`s still probed (Check.target): connections kept for others close."""

    async def close(self) -> None:
        """Closes every connection kept for probes."""


ProbeObserver = Callable[[CheckKind, bool, float], None]


@dataclass(frozen=True, slots=True)
class HealthConfig:
    """How a frontend probes its share and damps flapping nodes."""

    concurrency: int = 256
    """Probes run at once, at most (`health_probe_concurrency`)."""
    damping: DampingPolicy = field(default_factory=DampingPolicy)
    """Flap damping's penalty scale (the `damping_*` settings)."""


@dataclass(slots=True)
class HealthStats:
    """What the keeper counts (read by the metrics at scrape time)."""

    flaps: int = 0
    """Changes of a probed node's health seen by this frontend."""
    damped_flaps: int = 0
    """Of those, the ones that changed nothing subscribers see (the node was held damped)."""
    writes_failed: int = 0
    """Health writes that failed and were retried (etcd unreachable, the node kept changing)."""


class _Owned:
    """A node this frontend probes (or releases from damping), and what its probes found."""

    __slots__ = (
        "flaps",
        "generation",
        "health",
        "key",
        "output",
        "registration",
        "release_due",
        "release_entry",
        "states",
        "writer",
    )

    def __init__(self, registration: Registration, generation: int) -> None:
        node = registration.node
        self.key = node.key
        self.registration = registration
        self.generation = generation
        # A damped node's published health says nothing of its probes: its checks start unknown.
        start = None if node.damped else starting_health(node.health)
        self.states = [CheckState(check, start) for check in registration.checks]
        self.health: Health | None = start if registration.checks else None
        self.flaps = 0  # flips of `health` not written yet
        self.output = ""
        self.release_due = False
        self.release_entry = 0  # the heap entry of its latest release look (earlier ones lapse)
        self.writer: asyncio.Task[None] | None = None

    def same_probes(self, registration: Registration) -> bool:
        """The registration still asks for the same probes of the same incarnation."""
        mine, node = self.registration, registration.node
        return (
            mine.checks == registration.checks
            and mine.node.address == node.address
            and mine.node.incarnation == node.incarnation
        )


class HealthKeeper:
    """Probes this frontend's share of the nodes with checks and publishes their health."""

    def __init__(
        self,
        store: RegistryStore,
        hub: WatchHub,
        frontends: OperatorView,
        prober: Prober,
        frontend_id: str,
        config: HealthConfig | None = None,
        *,
        observe: ProbeObserver | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """`frontends`: the announcements the owners are computed over (the hub keeps them);
        `observe(kind, passed, seconds)`: each probe (a metrics hook); `clock`: wall time, which
        the flap records share with every frontend."""
        config = config or HealthConfig()
        self._hub = hub
        self._frontends = frontends
        self._prober = prober
        self.frontend_id = frontend_id
        self._writer = HealthWriter(store, config.damping, clock)
        self._clock = clock
        self._observe: ProbeObserver = observe or (lambda kind, passed, seconds: None)
        self._slots = asyncio.Semaphore(max(1, config.concurrency))
        self._owners = Owners()
        self._owned: dict[NodeKey, _Owned] = {}
        self._heap: list[tuple[float, int, int, NodeKey, int]] = []
        self._sequence = 0
        self._generation = 0
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._scheduler: asyncio.Task[None] | None = None
        self._failures = ThrottledLog(log, "health checks: writing a node's health")
        self.stats = HealthStats()

    # -- what others read ---------------------------------------------------------------------

    @property
    def owned(self) -> int:
        """Nodes this frontend probes (or watches over while damped) now."""
        return len(self._owned)

    def owns(self, key: NodeKey) -> bool:
        """This frontend probes the node now (it is in its rendezvous share)."""
        return key in self._owned

    @property
    def probes_running(self) -> int:
        """Nodes whose checks run here now (a metric)."""
        return len(self._tasks)

    # -- lifecycle ----------------------------------------------------------------------------

    async def run(self) -> None:
        """Looks for its share whenever members or announcements change (at most every
        `_RECONCILE_SECONDS`), probing in the background, until cancelled."""
        self._scheduler = asyncio.create_task(self._schedule(), name="health-scheduler")
        try:
            while True:
                change = self._hub.next_change()
                self.reconcile()
                await asyncio.sleep(_RECONCILE_SECONDS)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(_IDLE_RECONCILE_SECONDS):
                        await change.wait()
        finally:
            await self._stop()

    async def _stop(self) -> None:
        tasks = [self._scheduler, *self._tasks]
        tasks += [owned.writer for owned in self._owned.values()]
        for task in tasks:
            if task is not None:
                task.cancel()
        for task in tasks:
            if task is not None:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        self._owned.clear()
        await self._prober.close()

    # -- ownership ----------------------------------------------------------------------------

    def reconcile(self) -> None:
        """Takes the nodes that are now this frontend's and drops the others."""
        if self._hub.revision == 0:
            return
        self._owners.use(self._frontends.frontends)
        announced = self.frontend_id in self._owners.frontends
        mine: dict[NodeKey, Registration] = {}
        watched: set[NodeKey] = set()
        for member in self._hub.view.members(Scope()):
            registration = member.registration
            node = registration.node
            if not registration.checks and not node.damped:
                continue
            watched.add(node.key)
            if (
                announced
                and node.status is not NodeStatus.SUSPECT
                and self._owners.of(node.key) == self.frontend_id
            ):
                mine[node.key] = registration
        self._owners.forget_except(watched)
        for key in [key for key in self._owned if key not in mine]:
            self._drop(key)
        for key, registration in mine.items():
            owned = self._owned.get(key)
            if owned is None or not owned.same_probes(registration):
                self._take(registration)
            elif owned.registration is not registration:
                owned.registration = registration
                if registration.node.damped:
                    self._schedule_release(owned, registration.damped_until)
        self._prober.keep_only(
            {
                check_target(check, owned.registration.node.address)
                for owned in self._owned.values()
                for check in owned.registration.checks
            }
        )

    def _take(self, registration: Registration) -> None:
        self._drop(registration.node.key)
        self._generation += 1
        owned = _Owned(registration, self._generation)
        self._owned[owned.key] = owned
        now = asyncio.get_running_loop().time()
        for index, check in enumerate(registration.checks):
            # Spread over the interval: a frontend that takes thousands of nodes at once does
            # not probe them all in the same second.
            self._push(now + random.uniform(0, check.interval_seconds), owned, index)
        if registration.node.damped:
            self._schedule_release(owned, registration.damped_until)

    def _drop(self, key: NodeKey) -> None:
        owned = self._owned.pop(key, None)
        if owned is not None and owned.writer is not None:
            owned.writer.cancel()

    # -- scheduling ---------------------------------------------------------------------------

    def _push(self, due: float, owned: _Owned, index: int) -> int:
        self._sequence += 1
        entry = (due, self._sequence, owned.generation, owned.key, index)
        heapq.heappush(self._heap, entry)
        if self._heap[0] is entry:
            self._wake.set()
        return self._sequence

    def _schedule_release(self, owned: _Owned, damped_until: float) -> None:
        """A look at a damped node when its penalty should have decayed; it replaces any
        earlier look (a node that keeps flapping moves its release on)."""
        delay = max(0.0, damped_until - self._clock()) + _RELEASE_SLACK_SECONDS
        due = asyncio.get_running_loop().time() + delay
        owned.release_entry = self._push(due, owned, _RELEASE)

    async def _schedule(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            while self._heap and self._heap[0][0] <= loop.time():
                due, entry, generation, key, index = heapq.heappop(self._heap)
                owned = self._owned.get(key)
                if owned is None or owned.generation != generation:
                    continue  # dropped, or taken again since
                if index == _RELEASE:
                    if entry == owned.release_entry:  # else a later look replaced it
                        owned.release_due = True
                        self._write_soon(owned)
                    continue
                await self._slots.acquire()
                task = asyncio.create_task(self._probe(owned, index, due))
                self._tasks.add(task)
                task.add_done_callback(self._probe_done)
            self._wake.clear()
            timeout = self._heap[0][0] - loop.time() if self._heap else None
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._wake.wait()

    def _probe_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._slots.release()
        if not task.cancelled() and task.exception() is not None:
            log.error("health checks: a probe failed unexpectedly", exc_info=task.exception())

    async def _probe(self, owned: _Owned, index: int, due: float) -> None:
        state = owned.states[index]
        check = state.check
        address = owned.registration.node.address
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            result = await self._prober.probe(check, address)
        except Exception as err:  # a prober must answer; a bug in one is a failed probe
            log.exception("health checks: probing %s failed", describe_check(check, address))
            result = ProbeResult(False, f"probe error: {type(err).__name__}")
        finished = loop.time()
        self._observe(check.kind, result.passed, finished - started)
        if self._owned.get(owned.key) is not owned:
            return  # dropped while it ran
        # On the check's own grid, unless it fell behind it (then an interval from now).
        next_due = due + check.interval_seconds
        self._push(
            next_due if next_due > finished else finished + check.interval_seconds, owned, index
        )
        state.observe(result.passed)
        health = combined(owned.states)
        if health is None or health is owned.health:
            return
        if owned.health is None:
            owned.health = health  # established (a damped node taken over): not a flip
            return
        owned.flaps += 1
        owned.output = f"{describe_check(check, address)}: {result.output}"
        owned.health = health
        self._write_soon(owned)

    # -- writes -------------------------------------------------------------------------------

    def _write_soon(self, owned: _Owned) -> None:
        """One write at a time per node; a flip during a write is written after it."""
        if owned.writer is None or owned.writer.done():
            owned.writer = asyncio.create_task(self._write(owned), name=f"health-{owned.key}")

    async def _write(self, owned: _Owned) -> None:
        backoff = Backoff(initial=0.2, maximum=5.0)
        while owned.flaps or owned.release_due:
            flaps, release = owned.flaps, owned.release_due
            owned.flaps, owned.release_due = 0, False
            try:
                published = await self._writer.publish(
                    owned.key,
                    owned.registration.node.incarnation,
                    owned.health,
                    flaps=flaps,
                    output=owned.output,
                )
            except RegistryError as err:
                self.stats.writes_failed += 1
                self._failures.failed(f"failed for {owned.key} ({err}); retrying")
                owned.flaps += flaps
                owned.release_due = owned.release_due or release
                await backoff.wait()
                continue
            self._failures.succeeded()
            backoff.reset()
            if published is None:
                return  # no longer a member of that incarnation: the next look drops it
            self.stats.flaps += flaps
            if published.damped:
                if flaps and owned.registration.node.damped:
                    self.stats.damped_flaps += flaps
                self._schedule_release(owned, published.damped_until)
