"""Flap damping (docs/design.md §13), after BGP's route flap damping (RFC 2439): a node earns a
penalty each time its health flips or it registers anew; the penalty halves every half-life; a
node whose penalty reaches the suppress threshold is held in its worse state (FAILING, `damped`)
until the penalty decays below the reuse threshold. The penalty is capped so that a node is never
held longer than the longest hold after its last flap. Pure, no I/O.

A crash loop or a check that flips every second then costs subscribers a few events, not one per
flip: while a node is held, its flips change nothing they see (the penalty is written apart, in
the node's flap record, store/records.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from registry_service.domain import FlapRecord, Health


@dataclass(frozen=True, slots=True)
class DampingPolicy:
    """The penalty scale (the `damping_*` settings)."""

    penalty_per_flap: float = 1000.0
    """Earned per flip of health, or per registration anew (`damping_penalty_per_flap`)."""
    half_life_seconds: float = 60.0
    """The penalty halves in this time (`damping_half_life_seconds`)."""
    suppress_penalty: float = 3000.0
    """Reaching it holds the node FAILING; 0 turns damping off (`damping_suppress_penalty`)."""
    reuse_penalty: float = 750.0
    """A held node is released below it (`damping_reuse_penalty`)."""
    max_suppress_seconds: float = 300.0
    """The longest hold after the last flap (`damping_max_suppress_seconds`)."""

    @property
    def enabled(self) -> bool:
        """Damping is on (a suppress penalty of 0 turns it off)."""
        return self.suppress_penalty > 0

    @property
    def ceiling(self) -> float:
        """The highest penalty: the one that decays to the reuse threshold in the longest hold."""
        return self.reuse_penalty * math.pow(
            2.0, self.max_suppress_seconds / self.half_life_seconds
        )

    def decayed(self, record: FlapRecord | None, now: float) -> float:
        """The record's penalty at wall-clock time `now`."""
        if record is None:
            return 0.0
        elapsed = max(0.0, now - record.at)
        return record.penalty * math.pow(0.5, elapsed / self.half_life_seconds)

    def release_at(self, record: FlapRecord) -> float:
        """When the record's penalty decays below the reuse threshold (wall clock)."""
        if record.penalty <= self.reuse_penalty:
            return record.at
        return record.at + self.half_life_seconds * math.log2(record.penalty / self.reuse_penalty)


@dataclass(frozen=True, slots=True)
class Published:
    """What a node is published as after a decision: its health and whether it is damped, the
    flap record to write, and when a damped node should be looked at again (wall clock)."""

    health: Health
    damped: bool
    flaps: FlapRecord
    damped_until: float = 0.0


def decide(
    policy: DampingPolicy,
    record: FlapRecord | None,
    health: Health,
    *,
    was_damped: bool,
    flaps: int,
    now: float,
) -> Published:
    """How a node is published when its undamped health is `health` at `now`, after `flaps` new
    flips (or registrations anew; 0 for a look at a damped node whose penalty may have decayed).

    A node that was not damped is damped once its penalty reaches the suppress threshold; one
    that was stays damped until its penalty is below the reuse threshold (the gap between the two
    keeps it from flapping in and out of damping).
    """
    penalty = policy.decayed(record, now)
    if flaps:
        penalty = min(penalty + flaps * policy.penalty_per_flap, policy.ceiling)
    updated = FlapRecord(penalty, now, health)
    if not policy.enabled:
        return Published(health, False, updated)
    threshold = policy.reuse_penalty if was_damped else policy.suppress_penalty
    if penalty >= threshold:
        return Published(Health.FAILING, True, updated, policy.release_at(updated))
    return Published(health, False, updated)
