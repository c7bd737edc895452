"""Flap damping's decisions (pure): the penalty adds up per flap and halves every half-life; a
node is held FAILING from the suppress threshold until it decays below the reuse threshold;
the penalty's cap bounds the hold; off when the suppress threshold is 0."""

from __future__ import annotations

import math

import pytest

from registry_service.core.damping import DampingPolicy, decide
from registry_service.domain import FlapRecord, Health

POLICY = DampingPolicy(
    penalty_per_flap=1000,
    half_life_seconds=60,
    suppress_penalty=3000,
    reuse_penalty=750,
    max_suppress_seconds=300,
)


def test_the_penalty_halves_every_half_life():
    record = FlapRecord(2000, 100.0, Health.PASSING)
    assert POLICY.decayed(record, 100.0) == 2000
    assert POLICY.decayed(record, 160.0) == pytest.approx(1000)
    assert POLICY.decayed(record, 220.0) == pytest.approx(500)
    assert POLICY.decayed(None, 220.0) == 0


def test_flaps_add_up_and_the_node_is_held_failing_from_the_suppress_threshold():
    record, now = None, 0.0
    published = []
    for flip in range(4):
        health = Health.FAILING if flip % 2 == 0 else Health.PASSING
        decision = decide(POLICY, record, health, was_damped=False, flaps=1, now=now)
        record, now = decision.flaps, now + 1.0
        published.append((decision.health, decision.damped))
    assert published[:3] == [
        (Health.FAILING, False),
        (Health.PASSING, False),
        (Health.FAILING, False),  # 2967: decayed a little, under 3000
    ]
    assert published[3] == (Health.FAILING, True)  # passing, but held in its worse state
    assert record.health is Health.PASSING  # what it is once released


def test_a_held_node_stays_held_until_the_penalty_decays_below_the_reuse_threshold():
    record = FlapRecord(3000, 0.0, Health.PASSING)
    release = POLICY.release_at(record)
    assert release == pytest.approx(60 * math.log2(3000 / 750))  # two half-lives
    held = decide(POLICY, record, Health.PASSING, was_damped=True, flaps=0, now=release - 1)
    assert (held.health, held.damped) == (Health.FAILING, True)
    released = decide(POLICY, record, Health.PASSING, was_damped=True, flaps=0, now=release + 1)
    assert (released.health, released.damped) == (Health.PASSING, False)
    # Between the thresholds a node that was not held is not held (hysteresis).
    between = decide(POLICY, record, Health.PASSING, was_damped=False, flaps=0, now=60.0)
    assert not between.damped


def test_the_cap_bounds_the_hold_after_the_last_flap():
    record = None
    for second in range(600):  # a flap every second for ten minutes
        record = decide(POLICY, record, Health.PASSING, was_damped=True, flaps=1, now=second).flaps
    assert record.penalty == pytest.approx(POLICY.ceiling)
    assert POLICY.release_at(record) - record.at == pytest.approx(POLICY.max_suppress_seconds)


def test_a_flap_every_second_for_a_minute_changes_what_is_published_a_few_times_only():
    record, damped, changes, published = None, False, 0, Health.PASSING
    for second in range(60):
        health = Health.FAILING if second % 2 == 0 else Health.PASSING
        decision = decide(POLICY, record, health, was_damped=damped, flaps=1, now=second)
        if (decision.health, decision.damped) != (published, damped):
            changes += 1
        record, damped, published = decision.flaps, decision.damped, decision.health
    assert changes <= 60 / 10
    assert damped


def test_no_damping_when_the_suppress_threshold_is_zero():
    off = DampingPolicy(suppress_penalty=0)
    record = None
    for second in range(20):
        decision = decide(off, record, Health.FAILING, was_damped=False, flaps=1, now=second)
        assert (decision.health, decision.damped) == (Health.FAILING, False)
        record = decision.flaps
    assert record.penalty > 0  # still counted: turning damping on later starts informed
