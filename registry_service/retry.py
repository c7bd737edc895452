"""The pacing and the logging of every retry loop of a frontend (decision D44).

A loop that retries something failing (etcd unreachable, a worker that will not start, the local
etcd that keeps dying) waits a jittered delay that doubles up to a cap, and says so in the log once
when the trouble starts, then at most once per `quiet_seconds` with how many failures it did not
log, and once when it is over. Before, the evictor logged about ten warnings a second through an
etcd outage and the watch hub one every half second.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable


class Backoff:
    """Jittered exponential backoff with an injectable sleep (tests need no real waiting).

    `await wait()` after a failure, `reset()` after a success. Each delay is drawn from the upper
    half of the current step, so that processes which failed together do not retry together.
    """

    def __init__(
        self,
        initial: float = 0.05,
        maximum: float = 2.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._initial, self._maximum, self._sleep = initial, maximum, sleep
        self._next = initial

    def reset(self) -> None:
        """Back to the initial delay, after a success."""
        self._next = self._initial

    def next_delay(self) -> float:
        """The next delay in seconds (jittered), and doubles the step up to the cap."""
        delay = self._next * random.uniform(0.5, 1.0)
        self._next = min(self._next * 2, self._maximum)
        return delay

    async def wait(self) -> None:
        """Sleeps the next delay, after a failure."""
        await self._sleep(self.next_delay())


class ThrottledLog:
    """The log lines of one retry loop: the first failure of a run, then at most one line per
    `quiet_seconds` (saying how many were not logged), and one line when a success ends the run.

    Args:
        logger: where the lines go.
        what: names the loop in every line ("evictor", "etcd watch on 127.0.0.1:2379", ...).
        quiet_seconds: the least time between two lines about the same run of failures.
        clock: monotonic seconds (tests inject their own).
    """

    def __init__(
        self,
        logger: logging.Logger,
        what: str,
        *,
        quiet_seconds: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._logger = logger
        self.what = what
        self._quiet = quiet_seconds
        self._clock = clock
        self.failures = 0  # in the current run of failures
        self._suppressed = 0
        self._last_logged = 0.0

    def failed(self, error: object, level: int = logging.WARNING) -> bool:
        """Counts a failure; logs it when due. Returns whether it was logged."""
        self.failures += 1
        now = self._clock()
        if self.failures > 1 and now - self._last_logged < self._quiet:
            self._suppressed += 1
            return False
        if self._suppressed:
            self._logger.log(
                level,
                "%s: %s (still failing: %d more failures since the last line)",
                self.what,
                error,
                self._suppressed,
            )
        else:
            self._logger.log(level, "%s: %s", self.what, error)
        self._suppressed, self._last_logged = 0, now
        return True

    def succeeded(self) -> None:
        """Ends a run of failures (one INFO line, if there was one)."""
        if self.failures:
            self._logger.info("%s: working again after %d failures", self.what, self.failures)
        self.failures = self._suppressed = 0
