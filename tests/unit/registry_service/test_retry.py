"""Retry loops of a frontend log the start of a run of failures, then at most one line per quiet
period with what they held back, then its end (issue 11, problem 9; decision D44)."""

from __future__ import annotations

import logging

from registry_service.retry import Backoff, ThrottledLog


def test_a_run_of_failures_is_one_line_then_one_per_quiet_period_then_its_end(caplog):
    now = [0.0]
    throttled = ThrottledLog(
        logging.getLogger("loop"), "evictor", quiet_seconds=30, clock=lambda: now[0]
    )
    with caplog.at_level(logging.INFO, logger="loop"):
        for _ in range(100):  # ten a second for ten seconds
            throttled.failed("etcd unreachable")
            now[0] += 0.1
        now[0] = 31.0
        throttled.failed("etcd unreachable")
        throttled.succeeded()
        throttled.succeeded()  # nothing more to say
    assert [record.getMessage() for record in caplog.records] == [
        "evictor: etcd unreachable",
        "evictor: etcd unreachable (still failing: 99 more failures since the last line)",
        "evictor: working again after 101 failures",
    ]
    assert [record.levelno for record in caplog.records] == [30, 30, 20]


async def test_backoff_doubles_up_to_its_cap_with_jitter_and_resets():
    waited: list[float] = []

    async def sleep(seconds: float) -> None:
        waited.append(seconds)

    backoff = Backoff(initial=0.5, maximum=4.0, sleep=sleep)
    for _ in range(6):
        await backoff.wait()
    steps = [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert all(step / 2 <= delay <= step for delay, step in zip(waited, steps, strict=True))
    backoff.reset()
    await backoff.wait()
    assert 0.25 <= waited[-1] <= 0.5
