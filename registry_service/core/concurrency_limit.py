"""An adaptive concurrency limit: how many Registers a frontend takes at once, learnt from what it
measures (D72). Pure: no I/O, no clock; the caller hands in each sample.

In the spirit of Netflix's concurrency-limits (its Gradient2 limit) and TCP Vegas: the limit is
the number of requests in flight that the frontend serves before latency rises. Each sample's
latency is compared with the long-run average latency (an exponential average over about
`WINDOW_SAMPLES` samples); the new estimate is the limit times the gradient (TOLERANCE x long /
sample, between 0.5 and 1) plus a small allowance for a queue (QUEUE_ALLOWANCE), and the limit
moves a fifth of the way toward it (SMOOTHING). So it grows while latency holds, and shrinks when
latency rises above TOLERANCE times what it usually is; under a lasting rise it settles at twice
the allowance (or its minimum, if higher). When latency falls back far below the average, the
average is pulled down faster, so that the limit recovers. A request that finds the limit full
does not run: the caller has it wait (without using the CPU) or refuses it with a pushback.
Samples taken while far fewer requests were in flight than the limit say nothing about more,
and move nothing.

A second signal overrides the first: `congested()`, called while the event loop itself lags
(every callback waits, renewals included), cuts the limit by `BACKOFF_RATIO`, and while the loop
lags badly (`saturated=True`) nothing is admitted at all. Renewals are never limited: they are
what the limit protects.
"""

from __future__ import annotations

from dataclasses import dataclass

# The algorithm's constants (its bounds are settings, LimitBounds):
TOLERANCE = 2.0  # a sample up to this multiple of the average latency counts as no queue
SMOOTHING = 0.2  # how far each sample moves the limit toward its new estimate
QUEUE_ALLOWANCE = 4.0  # requests the estimate allows to queue
BACKOFF_RATIO = 0.8  # what one congested tick of the event loop leaves of the limit
WINDOW_SAMPLES = 600  # the long-run latency averages over about this many samples
WARMUP_SAMPLES = 10  # the first samples are averaged plainly


@dataclass(frozen=True, slots=True)
class LimitBounds:
    """The bounds of an adaptive limit; `max_limit` 0 turns admission control off."""

    initial_limit: int = 32
    """Requests admitted at once before anything was measured (`admission_initial_limit`)."""
    min_limit: int = 2
    """The limit never shrinks below this while the event loop keeps up
    (`admission_min_limit`)."""
    max_limit: int = 256
    """The limit never grows above this; 0: no admission control (`admission_max_limit`)."""

    @property
    def enabled(self) -> bool:
        return self.max_limit > 0


class AdaptiveLimit:
    """Admits requests up to a limit that follows measured latency.

    Use: `if limit.acquire(): ... finally limit.release(rtt_seconds)`; a request that gets no
    slot (`acquire()` False) holds nothing. `congested()` is the event loop's lag signal.
    """

    def __init__(self, bounds: LimitBounds) -> None:
        self._bounds = bounds
        self._limit = float(min(max(bounds.initial_limit, bounds.min_limit), bounds.max_limit))
        self._in_flight = 0
        self._saturated = False
        self._long_rtt = 0.0
        self._samples = 0
        self.admitted = 0
        """Requests admitted since the start."""

    @property
    def limit(self) -> int:
        """Requests admitted at once now (0 while the event loop is saturated)."""
        return 0 if self._saturated else max(1, int(self._limit))

    @property
    def in_flight(self) -> int:
        return self._in_flight

    @property
    def long_rtt_seconds(self) -> float:
        """The long-run average latency of a request (0 before any sample)."""
        return self._long_rtt

    def acquire(self) -> bool:
        """Takes a slot if one is free; False: the request must wait, or be refused."""
        if not self._bounds.enabled:
            self.admitted += 1
            return True
        if self._in_flight >= self.limit:
            return False
        self._in_flight += 1
        self.admitted += 1
        return True

    def release(self, rtt_seconds: float) -> None:
        """Gives the slot back and learns from the request's latency."""
        if not self._bounds.enabled:
            return
        in_flight = self._in_flight
        self._in_flight = max(0, in_flight - 1)
        if rtt_seconds <= 0:
            return
        long_rtt = self._average(rtt_seconds)
        if long_rtt / rtt_seconds > 2:
            # Latency is back far below the average (a burst has passed): pull the average
            # down faster than it would fall by itself.
            self._long_rtt *= 0.95
        if in_flight * 2 < self._limit:
            return  # far below the limit: the sample says nothing about more
        gradient = max(0.5, min(1.0, TOLERANCE * long_rtt / rtt_seconds))
        estimate = self._limit * gradient + QUEUE_ALLOWANCE
        limit = self._limit * (1 - SMOOTHING) + estimate * SMOOTHING
        bounds = self._bounds
        self._limit = max(bounds.min_limit, min(bounds.max_limit, limit))

    def _average(self, rtt_seconds: float) -> float:
        self._samples += 1
        if self._samples <= WARMUP_SAMPLES:
            self._long_rtt += (rtt_seconds - self._long_rtt) / self._samples
        else:
            self._long_rtt += (rtt_seconds - self._long_rtt) * 2 / (WINDOW_SAMPLES + 1)
        return self._long_rtt

    def congested(self, *, saturated: bool = False) -> None:
        """The event loop lags: shrink the limit; `saturated` (it lags badly): admit nothing
        until `relieved()`."""
        if not self._bounds.enabled:
            return
        self._limit = max(self._bounds.min_limit, self._limit * BACKOFF_RATIO)
        self._saturated = saturated

    def relieved(self) -> None:
        """The event loop keeps up again: admit up to the limit."""
        self._saturated = False
