"""The adaptive Register limit (D72): it grows while latency holds and requests press against it,
shrinks when latency rises above what it usually is, recovers when it falls back, gives way to
the event loop's lag, and stays within its bounds."""

from __future__ import annotations

from registry_service.core.concurrency_limit import AdaptiveLimit, LimitBounds

NO_LOAD = 0.002  # seconds


def pressed(limit: AdaptiveLimit, rtt: float, samples: int) -> None:
    """`samples` requests, each completing while the limit is full (they press against it)."""
    for _ in range(samples):
        while limit.acquire():
            pass
        limit.release(rtt)


def test_the_limit_grows_while_latency_holds() -> None:
    limit = AdaptiveLimit(LimitBounds(initial_limit=8, min_limit=2, max_limit=256))
    pressed(limit, NO_LOAD, 50)
    assert limit.limit > 8
    grown = limit.limit
    pressed(limit, NO_LOAD * 1.5, 50)  # within the tolerance: still no queue
    assert limit.limit > grown
    assert limit.long_rtt_seconds > NO_LOAD


def test_the_limit_shrinks_when_latency_rises_beyond_the_tolerance() -> None:
    limit = AdaptiveLimit(LimitBounds(initial_limit=64, min_limit=2, max_limit=256))
    pressed(limit, NO_LOAD, 20)
    before = limit.limit
    pressed(limit, NO_LOAD * 10, 40)  # a queue: ten times the usual latency
    assert limit.limit < before / 2
    assert limit.limit <= 12  # a lasting rise: it settles near twice the queue allowance
    shrunk = AdaptiveLimit(LimitBounds(initial_limit=64, min_limit=20, max_limit=256))
    pressed(shrunk, NO_LOAD, 20)
    pressed(shrunk, NO_LOAD * 10, 40)
    assert shrunk.limit == 20  # never below the minimum


def test_after_a_burst_the_limit_recovers_as_latency_falls_back() -> None:
    limit = AdaptiveLimit(LimitBounds(initial_limit=64, min_limit=2, max_limit=256))
    pressed(limit, NO_LOAD, 20)
    pressed(limit, NO_LOAD * 10, 40)  # a burst
    low = limit.limit
    pressed(limit, NO_LOAD, 300)
    assert limit.limit > 4 * low


def test_the_limit_never_grows_above_its_maximum() -> None:
    limit = AdaptiveLimit(LimitBounds(initial_limit=8, min_limit=2, max_limit=20))
    pressed(limit, NO_LOAD, 1_000)
    assert limit.limit == 20


def test_requests_far_below_the_limit_do_not_grow_it() -> None:
    limit = AdaptiveLimit(LimitBounds(initial_limit=32, min_limit=2, max_limit=256))
    for _ in range(500):
        assert limit.acquire()
        limit.release(NO_LOAD)  # one at a time: the limit is not what holds them back
    assert limit.limit == 32


def test_a_full_limit_gives_no_slot_until_a_release_frees_one() -> None:
    limit = AdaptiveLimit(LimitBounds(initial_limit=3, min_limit=2, max_limit=256))
    assert [limit.acquire() for _ in range(4)] == [True, True, True, False]
    assert (limit.in_flight, limit.admitted) == (3, 3)
    limit.release(NO_LOAD)
    assert limit.acquire()


def test_a_lagging_event_loop_cuts_the_limit_and_a_saturated_one_admits_nothing() -> None:
    limit = AdaptiveLimit(LimitBounds(initial_limit=100, min_limit=2, max_limit=256))
    limit.congested()
    assert limit.limit == 80
    for _ in range(50):
        limit.congested()
    assert limit.limit == 2
    limit.congested(saturated=True)
    assert limit.limit == 0 and not limit.acquire()
    limit.relieved()
    assert limit.limit == 2 and limit.acquire()


def test_a_store_that_became_slower_for_good_is_the_new_normal() -> None:
    limit = AdaptiveLimit(LimitBounds(initial_limit=16, min_limit=2, max_limit=256))
    pressed(limit, NO_LOAD, 20)
    pressed(limit, NO_LOAD * 5, 3_000)  # the average learns the new latency
    assert abs(limit.long_rtt_seconds - NO_LOAD * 5) < NO_LOAD * 0.1
    settled = limit.limit
    pressed(limit, NO_LOAD * 5, 100)
    assert limit.limit >= settled  # no queue at the new normal: it no longer shrinks


def test_admission_control_off_admits_everything() -> None:
    limit = AdaptiveLimit(LimitBounds(max_limit=0))
    assert all(limit.acquire() for _ in range(10_000))
    limit.congested(saturated=True)
    assert limit.acquire()
