"""Acknowledgements: latency, what is owed since when, and who is overdue (pure logic)."""

from __future__ import annotations

from registry_service.hub.acks import AckTracker


def test_an_acknowledging_subscriber_owes_from_its_first_unacknowledged_message():
    latencies: list[float] = []
    acks = AckTracker(acknowledging=True, observe=latencies.append)
    acks.written(10, at=100.0)
    acks.written(11, at=101.0)
    assert acks.unacked_since == 100.0
    acks.ack(10, sent_revision=11, now=100.5)
    assert latencies == [0.5] and acks.unacked_since == 101.0
    acks.ack(11, sent_revision=11, now=103.0)
    assert latencies == [0.5, 2.0] and acks.unacked_since == 0
    assert acks.acked_revision == 11


def test_overdue_only_for_subscribers_that_opted_in():
    promised = AckTracker(acknowledging=True, observe=lambda s: None)
    promised.written(5, at=10.0)
    assert not promised.overdue(now=14.9, deadline_seconds=5)
    assert promised.overdue(now=15.0, deadline_seconds=5)
    assert not promised.overdue(now=15.0, deadline_seconds=0)  # 0: never
    promised.forgive()
    assert not promised.overdue(now=99.0, deadline_seconds=5)

    silent = AckTracker(acknowledging=False, observe=lambda s: None)
    silent.written(5, at=10.0)
    assert not silent.tracking and not silent.overdue(now=1e9, deadline_seconds=5)


def test_an_acknowledgement_never_counts_beyond_what_was_sent():
    acks = AckTracker(acknowledging=False, observe=lambda s: None)
    acks.ack(50, sent_revision=20, now=0.0)
    assert acks.acked_revision == 20 and acks.tracking  # timed from its first ack on
