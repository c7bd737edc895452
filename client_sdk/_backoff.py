"""The pacing of every retry loop in the SDK: delays that double up to a cap, with jitter.

Each delay is drawn from the upper half of the current step, so that clients which failed together
(a frontend restart) do not retry together; retries never stop, only `reset()` after a success
brings the delay back to the start (decision D12).
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable

from client_sdk._config import ClientConfig


class Backoff:
    """One retry loop's delays: `await backoff.wait()` after a failure, `reset()` after a success.

    Args:
        initial_seconds: the first step.
        max_seconds: the cap of every step.
        sleep: how to wait (tests inject a fast or recording one).
        jitter: draws a number in [low, high]; `random.uniform` unless a test needs it fixed.
    """

    def __init__(
        self,
        initial_seconds: float,
        max_seconds: float,
        sleep: Callable[[float], Awaitable[None]],
        jitter: Callable[[float, float], float] = random.uniform,
    ) -> None:
        self._initial = initial_seconds
        self._max = max_seconds
        self._sleep = sleep
        self._jitter = jitter
        self._step = initial_seconds

    @classmethod
    def from_config(cls, config: ClientConfig, max_seconds: float | None = None) -> Backoff:
        """The client's retry pacing, optionally capped lower (renewals cap it at TTL/3)."""
        return cls(
            config.retry_initial_seconds, max_seconds or config.retry_max_seconds, config.sleep
        )

    def next_delay(self) -> float:
        """The delay to wait now; the step after it doubles (up to the cap)."""
        delay = min(self._step, self._max) * self._jitter(0.5, 1.0)
        self._step = min(self._step * 2, self._max)
        return delay

    def reset(self) -> None:
        self._step = self._initial

    async def wait(self) -> None:
        await self._sleep(self.next_delay())
