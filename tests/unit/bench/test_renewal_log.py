"""The bench's account of renewals (bench/renewal_tap.py): what counts as on time, and what
retries cannot buy back."""

from __future__ import annotations

import pytest

from bench.renewal_tap import RenewalLog, on_time_share

PERIOD = 1.0


def renewed(log: RenewalLog, node_id: str, times: list[float], latency: float = 0.01) -> None:
    for at in times:
        log.answered(node_id, 0, at, at + latency)


def test_a_registration_renewed_every_period_owes_nothing():
    log = RenewalLog(PERIOD)
    log.registered("a", 0.0)
    renewed(log, "a", [0.5 + i for i in range(10)])
    figures = log.report(2.0, 7.0)
    assert figures["held"] == 1
    assert figures["owed"] == pytest.approx(5.0)
    assert figures["on_time"] == 5
    assert on_time_share(figures["on_time"], figures["owed"]) == 1.0


def test_an_answer_later_than_a_period_is_late_and_covers_nothing():
    log = RenewalLog(PERIOD)
    log.registered("a", 0.0)
    log.answered("a", 0, 2.5, 2.6)  # covers 2.5 .. 3.75
    log.answered("a", 0, 3.5, 4.8)  # 1.3 s after it was asked
    figures = log.report(2.0, 5.0)
    assert figures["late"] == 1
    assert on_time_share(figures["on_time"], figures["owed"]) == pytest.approx(1.25 / 3)


def test_the_share_does_not_depend_on_where_the_window_cuts_the_renewals():
    log = RenewalLog(PERIOD)
    for node_id in ("a", "b"):
        log.registered(node_id, 0.0)
    answers = [(0.999 + i + 0.3, "a", 0.999 + i) for i in range(10)]  # right at the edges
    answers += [(0.51 + i, "b", 0.5 + i) for i in range(10)]
    for at, node_id, asked in sorted(answers):  # the log takes answers as they come
        log.answered(node_id, 0, asked, at)
    for t0 in (2.0, 1.9995, 2.0005, 2.3):
        figures = log.report(t0, t0 + 6.0)
        assert on_time_share(figures["on_time"], figures["owed"]) == pytest.approx(1.0)


def test_silence_counts_against_the_renewals_owed():
    log = RenewalLog(PERIOD)
    log.registered("a", 0.0)
    log.registered("b", 0.0)
    renewed(log, "a", [0.5 + i for i in range(10)])
    renewed(log, "b", [0.5, 1.5])  # then nothing
    figures = log.report(2.0, 6.0)
    assert on_time_share(figures["on_time"], figures["owed"]) == pytest.approx(0.5)
    assert figures["unanswered_registrations"] == 1


def test_a_burst_of_retries_cannot_make_up_for_silence():
    log = RenewalLog(PERIOD)
    log.registered("a", 0.0)
    renewed(log, "a", [5.5 + i * 0.01 for i in range(50)])  # silent, then fifty answers at once
    figures = log.report(2.0, 6.0)
    assert on_time_share(figures["on_time"], figures["owed"]) == pytest.approx(0.5 / 4)


def test_registrations_made_after_the_window_began_are_not_counted():
    log = RenewalLog(PERIOD)
    log.registered("early", 0.0)
    log.registered("late", 3.0)
    renewed(log, "early", [0.5 + i for i in range(6)])
    figures = log.report(2.0, 5.0)
    assert figures["held"] == 1
    assert on_time_share(figures["on_time"], figures["owed"]) == 1.0


def test_refusals_are_counted_per_answer_and_per_registration():
    log = RenewalLog(PERIOD)
    log.registered("a", 0.0)
    for at in (2.5, 3.5, 4.5):
        log.answered("a", 5, at, at + 0.01)
    figures = log.report(2.0, 5.0)
    assert (figures["refused"], figures["refused_registrations"], figures["on_time"]) == (3, 1, 0)


def test_states_other_than_active_are_counted_per_registration():
    log = RenewalLog(PERIOD)
    log.registered("a", 0.0)
    log.state("a", "SUSPENDED", 2.5)
    log.state("a", "ACTIVE", 2.7)
    log.state("a", "SUSPENDED", 3.5)
    figures = log.report(2.0, 5.0)
    assert figures["registrations_not_active"] == 1
    assert figures["suspended_transitions"] == 2


def test_the_series_shows_where_the_full_rate_came_back():
    log = RenewalLog(PERIOD)
    log.registered("a", 0.0)
    renewed(log, "a", [0.5, 1.5, 5.5, 6.5, 7.5])  # covered until 2.75, silent until 5.5
    shares = [on_time_share(*window) for window in log.series(3.0, 8.0, 0.5)]
    back = next(i for i, share in enumerate(shares) if share == pytest.approx(1.0))
    assert shares[0] == 0.0
    assert 3.0 + back * 0.5 == pytest.approx(5.5)  # the first period covered throughout
    assert len(shares) == 9  # periods starting 3.0, 3.5, ... 7.0 (ending by 8.0)
