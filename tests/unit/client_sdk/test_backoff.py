"""The SDK's retry pacing: doubling steps up to a cap, jittered, back to the start on reset."""

from __future__ import annotations

import asyncio

from client_sdk import ClientConfig
from client_sdk._backoff import Backoff


def fixed(fraction: float):
    return lambda low, high: low + (high - low) * fraction


async def no_sleep(_: float) -> None:
    return None


def test_steps_double_up_to_the_cap():
    backoff = Backoff(0.1, 1.0, no_sleep, jitter=fixed(1.0))
    assert [round(backoff.next_delay(), 3) for _ in range(6)] == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]


def test_each_delay_is_jittered_within_the_upper_half_of_its_step():
    low = Backoff(0.4, 10.0, no_sleep, jitter=fixed(0.0))
    high = Backoff(0.4, 10.0, no_sleep, jitter=fixed(1.0))
    assert (low.next_delay(), high.next_delay()) == (0.2, 0.4)
    real = Backoff(0.4, 10.0, no_sleep)
    assert all(0.5 <= real.next_delay() / (0.4 * 2**i) <= 1.0 for i in range(4))


def test_reset_starts_again_from_the_first_step():
    backoff = Backoff(0.1, 5.0, no_sleep, jitter=fixed(1.0))
    for _ in range(4):
        backoff.next_delay()
    backoff.reset()
    assert backoff.next_delay() == 0.1


def test_a_cap_below_the_first_step_caps_it_too():
    backoff = Backoff(1.0, 0.3, no_sleep, jitter=fixed(1.0))
    assert [backoff.next_delay() for _ in range(2)] == [0.3, 0.3]


def test_wait_sleeps_with_the_configured_sleep_and_pacing():
    slept: list[float] = []

    async def record(seconds: float) -> None:
        slept.append(seconds)

    config = ClientConfig(retry_initial_seconds=0.5, retry_max_seconds=0.8, sleep=record)
    backoff = Backoff.from_config(config)

    async def three_waits() -> None:
        for _ in range(3):
            await backoff.wait()

    asyncio.run(three_waits())
    assert len(slept) == 3
    assert 0.25 <= slept[0] <= 0.5 and all(0.4 <= s <= 0.8 for s in slept[1:])
    assert Backoff.from_config(config, max_seconds=0.2).next_delay() <= 0.2
