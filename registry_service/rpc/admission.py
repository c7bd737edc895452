"""Renewals first (D72): what a frontend under pressure still takes, and what it refuses early.

KeepAlive is never refused here: renewals are what an overloaded frontend must keep serving, and
what it refuses is refused to protect them. A Register runs only within an adaptive concurrency
limit (core/concurrency_limit.py) that follows the latency Registers see. One that finds the
limit full waits in a bounded line (`max_waiting`, at most `max_wait_seconds`; waiting costs the
event loop nothing) for a slot, first come first served; one that finds the line full, or waits
too long, is refused. GetNodes and new WatchNodes streams are admitted while the event loop keeps
up. A refused call ends with RESOURCE_EXHAUSTED, a message that says to retry later, and gRPC's
`grpc-retry-pushback-ms` trailer (the SDK waits that long before it sends the Register again):
work that would queue behind the renewals never enters.

The event loop's own lag is the second signal: every callback, a renewal's included, waits that
long. It is measured by a ticker; while it exceeds `loop_lag_seconds` the Register limit
shrinks and reads are refused, and while it exceeds four times that no Register is admitted.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import random
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from registry_service.core.concurrency_limit import AdaptiveLimit, LimitBounds
from registry_service.errors import OverloadedError

_SATURATED_LAG_RATIO = 4.0  # lag beyond this many times loop_lag_seconds: no Register at all
_TICK_SECONDS = 0.05  # how often the event loop's lag is measured


@dataclass(frozen=True, slots=True)
class AdmissionConfig:
    """How a frontend sheds Registers and reads to keep its renewals on time."""

    bounds: LimitBounds = field(default_factory=LimitBounds)
    """The adaptive limit of Registers in flight (`admission_initial_limit`,
    `admission_min_limit`, `admission_max_limit`; a max of 0 turns admission control off)."""
    loop_lag_seconds: float = 0.1
    """Event-loop lag above which the frontend counts as congested
    (`admission_loop_lag_seconds`)."""
    retry_after_seconds: float = 1.0
    """The pushback a refused call gets, jittered between half and one and a half times this
    (`admission_retry_after_seconds`)."""
    max_waiting: int = 1_024
    """Registers that may wait for a slot; beyond, refused at once (`admission_max_waiting`)."""
    max_wait_seconds: float = 1.0
    """How long a Register waits for a slot before it is refused
    (`admission_max_wait_seconds`)."""


class Admission:
    """The gate in front of Register, GetNodes and WatchNodes (never KeepAlive)."""

    def __init__(
        self,
        config: AdmissionConfig | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        jitter: Callable[[float, float], float] = random.uniform,
    ) -> None:
        self._config = config or AdmissionConfig()
        self._clock = clock
        self._jitter = jitter
        self.registers = AdaptiveLimit(self._config.bounds)
        """The Register limit; its state is read by the metrics at scrape time."""
        self.loop_lag_seconds = 0.0
        """The event loop's lag at the last tick."""
        self.registers_refused = 0
        self.reads_refused = 0
        self._waiting: collections.deque[asyncio.Future[None]] = collections.deque()
        self._congested = False
        self._ticker: asyncio.Task[None] | None = None

    @classmethod
    def off(cls) -> Admission:
        """Admits everything (a servicer built without admission control: tests, tools)."""
        return cls(AdmissionConfig(bounds=LimitBounds(max_limit=0)))

    @property
    def enabled(self) -> bool:
        return self._config.bounds.enabled

    @property
    def congested(self) -> bool:
        """The event loop lagged beyond `loop_lag_seconds` at the last tick."""
        return self._congested

    def start(self) -> None:
        """Starts measuring the event loop's lag (nothing to measure when admission is off)."""
        if self.enabled and self._ticker is None:
            self._ticker = asyncio.create_task(self._tick(), name="admission-loop-lag")

    async def close(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
            self._ticker = None

    async def _tick(self) -> None:
        interval = _TICK_SECONDS
        while True:
            expected = self._clock() + interval
            await asyncio.sleep(interval)
            self.observe_lag(max(0.0, self._clock() - expected))

    def observe_lag(self, lag_seconds: float) -> None:
        """One measurement of the event loop's lag (the ticker's, or a test's)."""
        self.loop_lag_seconds = lag_seconds
        threshold = self._config.loop_lag_seconds
        self._congested = lag_seconds > threshold
        if self._congested:
            self.registers.congested(saturated=lag_seconds > _SATURATED_LAG_RATIO * threshold)
        else:
            self.registers.relieved()
            self._hand_out_slots()

    @property
    def waiting(self) -> int:
        """Registers waiting for a slot now."""
        return len(self._waiting)

    def _hand_out_slots(self) -> None:
        """Gives free slots to the Registers waiting longest."""
        waiting = self._waiting
        while waiting:
            if waiting[0].done():  # gave up waiting
                waiting.popleft()
                continue
            if not self.registers.acquire():
                return
            waiting.popleft().set_result(None)

    def _pushback(self) -> float:
        base = self._config.retry_after_seconds
        return round(base * self._jitter(0.5, 1.5), 3)

    @contextlib.asynccontextmanager
    async def register(self) -> AsyncIterator[None]:
        """Holds a Register's slot while it runs (waiting for one in line if the limit is full),
        and learns from its latency.

        Raises:
            OverloadedError: no slot within `max_wait_seconds`, the line is full, or the event
                loop is saturated; nothing was done.
        """
        limit = self.registers
        if not limit.acquire():
            await self._wait_for_slot()
        started = self._clock()
        try:
            yield
        finally:
            limit.release(self._clock() - started)
            self._hand_out_slots()

    async def _wait_for_slot(self) -> None:
        config, limit = self._config, self.registers
        if len(self._waiting) < config.max_waiting and limit.limit > 0:
            slot = asyncio.get_running_loop().create_future()
            self._waiting.append(slot)
            taken = False
            try:
                async with asyncio.timeout(config.max_wait_seconds):
                    await slot
                taken = True
                return
            except TimeoutError:
                # A slot handed out in the same loop step as the timeout is this Register's.
                taken = slot.done() and not slot.cancelled()
                if taken:
                    return
            finally:
                if not slot.done():
                    slot.cancel()
                elif not taken and not slot.cancelled():
                    # Handed a slot it will not use (cancelled meanwhile): it goes back, or
                    # each such call would lower the limit for good.
                    limit.release(0.0)
                    self._hand_out_slots()
        pushback = self._pushback()
        self.registers_refused += 1
        if limit.limit > 0:
            state = (
                f"it takes {limit.limit} Registers at once, has {limit.in_flight} in flight and "
                f"{len(self._waiting)} waiting"
            )
        else:
            state = f"its event loop runs {self.loop_lag_seconds * 1000:.0f} ms behind"
        raise OverloadedError(
            f"the frontend is overloaded and serves renewals first: {state}; retry in "
            f"{pushback:g} s (grpc-retry-pushback-ms), or on another frontend",
            retry_after_seconds=pushback,
        )

    def read(self, what: str) -> None:
        """Admits a read (`what`: GetNodes, WatchNodes) unless the event loop lags.

        Raises:
            OverloadedError: the frontend is congested; nothing was done.
        """
        if not self.enabled or not self._congested:
            return
        self.reads_refused += 1
        pushback = self._pushback()
        raise OverloadedError(
            f"the frontend is overloaded and serves renewals first: {what} refused for now "
            f"(event loop {self.loop_lag_seconds * 1000:.0f} ms behind); retry in {pushback:g} s "
            "(grpc-retry-pushback-ms), or on another frontend",
            retry_after_seconds=pushback,
        )
