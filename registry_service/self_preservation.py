"""The eviction budget (self-preservation, DESIGN.md §6): pure decisions, no I/O.

Per datacenter, at most `max(minimum, ratio x members)` expired members are removed within any
sliding window. When more stop renewing at once, the evictor removes up to what is left of the
budget (oldest registration first) and marks the rest SUSPECT: a network partition between nodes
and registry must not empty the node list, the way Eureka's self-preservation stops expiring when
renewals drop. Suspects leave in one of four ways:

- they renew or re-register: UP again (the registry restores them, not this module);
- the budget covers every silent member of the datacenter again (the mass event has passed, only
  a normal number of nodes is still silent): they are removed as BUDGET_RELEASED;
- they stay silent past the hard ceiling: removed as CEILING, whatever the budget;
- an operator confirms (removed) or cancels (restored) them.

Deliberate removals (Deregister) never pass through here.
"""

from __future__ import annotations

import collections
import enum
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from registry_service.domain import NodeKey, NodeStatus
from registry_service.store.base import Member


@dataclass(frozen=True, slots=True)
class BudgetPolicy:
    ratio: float = 0.15
    minimum: int = 2
    window_seconds: float = 60.0
    ceiling_seconds: float = 900.0

    def budget(self, members: int) -> int:
        return max(self.minimum, math.floor(self.ratio * members))


class Action(enum.Enum):
    EVICT = "evict"  # expired within the budget: removed
    SUSPECT = "suspect"  # expired beyond the budget: held as SUSPECT
    RELEASE = "release"  # a suspect the budget covers again: removed
    CEILING = "ceiling"  # a suspect past the hard ceiling: removed

    @property
    def removes(self) -> bool:
        return self is not Action.SUSPECT

    @property
    def spends_budget(self) -> bool:
        return self in (Action.EVICT, Action.RELEASE)


@dataclass(frozen=True, slots=True)
class Decision:
    key: NodeKey
    member: Member
    action: Action


@dataclass(frozen=True, slots=True)
class DatacenterBudget:
    """One datacenter's budget as the last plan saw it."""

    members: int
    budget: int
    spent: int
    silent: int
    suspects: int

    @property
    def preserving(self) -> bool:
        """True while the datacenter holds silent members back (the alarm)."""
        return self.suspects > 0


@dataclass(frozen=True, slots=True)
class EvictionPlan:
    decisions: tuple[Decision, ...] = ()
    datacenters: Mapping[str, DatacenterBudget] = field(default_factory=dict)


class EvictionLedger:
    """When each budgeted eviction happened, per datacenter, within the sliding window."""

    def __init__(self, window_seconds: float) -> None:
        self._window = window_seconds
        self._times: dict[str, collections.deque[float]] = {}

    def spent(self, datacenter: str, now: float) -> int:
        times = self._times.get(datacenter)
        if not times:
            return 0
        while times and now - times[0] >= self._window:
            times.popleft()
        return len(times)

    def record(self, datacenter: str, now: float) -> None:
        self._times.setdefault(datacenter, collections.deque()).append(now)

    def refund(self, datacenter: str, now: float) -> None:
        """Takes back a recorded eviction that did not happen (its write failed). The newest
        records are the usual ones to take back (booked by the same sweep): O(1) then."""
        times = self._times.get(datacenter)
        if times and times[-1] == now:
            times.pop()
        elif times and now in times:
            times.remove(now)


def plan_evictions(
    expired: Iterable[tuple[NodeKey, Member]],
    members_per_datacenter: Mapping[str, int],
    ledger: EvictionLedger,
    policy: BudgetPolicy,
    now: float,
) -> EvictionPlan:
    """Decides what happens to each member whose live key is gone. `now` is wall-clock time (a
    suspect's `suspect_since` is written by whichever frontend led eviction then)."""
    fresh: dict[str, list[tuple[NodeKey, Member]]] = collections.defaultdict(list)
    held: dict[str, list[tuple[NodeKey, Member]]] = collections.defaultdict(list)
    for key, member in expired:
        suspect = member.registration.node.status is NodeStatus.SUSPECT
        (held if suspect else fresh)[key.datacenter].append((key, member))

    decisions: list[Decision] = []
    budgets: dict[str, DatacenterBudget] = {}
    for datacenter in sorted(fresh.keys() | held.keys()):
        spent = ledger.spent(datacenter, now)
        # The population at the window's start: evicted members still count towards the share.
        budget = policy.budget(members_per_datacenter.get(datacenter, 0) + spent)
        available = max(0, budget - spent)
        candidates = sorted(fresh[datacenter], key=lambda item: item[1].mod_revision)
        suspects = []
        for key, member in held[datacenter]:
            if now - member.registration.suspect_since >= policy.ceiling_seconds:
                decisions.append(Decision(key, member, Action.CEILING))
            else:
                suspects.append((key, member))
        silent = len(candidates) + len(suspects)
        if silent <= available:
            decisions.extend(Decision(k, m, Action.EVICT) for k, m in candidates)
            decisions.extend(Decision(k, m, Action.RELEASE) for k, m in suspects)
            still_suspect = 0
        else:
            decisions.extend(Decision(k, m, Action.EVICT) for k, m in candidates[:available])
            decisions.extend(Decision(k, m, Action.SUSPECT) for k, m in candidates[available:])
            still_suspect = silent - min(available, len(candidates))
        budgets[datacenter] = DatacenterBudget(
            members=members_per_datacenter.get(datacenter, 0),
            budget=budget,
            spent=spent,
            silent=silent,
            suspects=still_suspect,
        )
    return EvictionPlan(tuple(decisions), budgets)
