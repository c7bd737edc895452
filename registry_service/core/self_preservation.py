"""The eviction budget (self-preservation, docs/design.md §6 and §9): pure decisions, no I/O.

Per datacenter, at most `max(minimum, ratio x members)` expired members are removed within any
sliding window, and per (datacenter, type) at most `max(type_minimum, ratio x members of the
type)`: three meta nodes beside a hundred data nodes are not one pool. An expired member goes
only while both allowances have room (the smaller wins). When more stop renewing at once, the
evictor removes up to what is left of the budgets (oldest registration first) and marks the rest
SUSPECT: a network partition between nodes and registry must not empty the node list, the way
Eureka's self-preservation stops expiring when renewals drop. Suspects leave in one of four ways:

- they renew or re-register: UP again (the registry restores them, not this module);
- the budget covers every silent member of the datacenter, and each type's budget every silent
  member of its type, again (the mass event has passed, only a normal number of nodes is still
  silent): they are removed as BUDGET_RELEASED;
- they stay silent past the hard ceiling: removed as CEILING, whatever the budget;
- an operator confirms (removed) or cancels (restored) them.

Below `min_members` members (Eureka's renewal threshold has the same purpose) a datacenter has no
budget: every expired member goes at once, as a developer's handful of test nodes should, and
only a fleet large enough for a mass expiry to mean a partition is held back.

Deliberate removals (Deregister) never pass through here.
"""

from __future__ import annotations

import collections
import enum
import math
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass, field

from registry_service.domain import NodeKey, NodeStatus
from registry_service.store.base import Member


@dataclass(frozen=True, slots=True)
class BudgetPolicy:
    """The eviction budget's settings."""

    ratio: float = 0.15
    """Share of a datacenter's (and a type's) members that may expire per window
    (`eviction_budget_ratio`)."""
    minimum: int = 2
    """Expired members a datacenter may always lose per window (`eviction_budget_minimum`)."""
    window_seconds: float = 60.0
    """The sliding window (`eviction_window_seconds`)."""
    ceiling_seconds: float = 900.0
    """A suspect still silent after this is removed, whatever the budget
    (`suspect_ceiling_seconds`)."""
    type_minimum: int = 2
    """Expired members each (datacenter, type) may always lose per window
    (`eviction_budget_type_minimum`)."""
    min_members: int = 0
    """A datacenter of fewer members has no budget: every expired member goes at once
    (`self_preservation_min_members`)."""

    def preserves(self, members: int) -> bool:
        """Whether a datacenter of `members` is held to the budget at all."""
        return members >= self.min_members

    def budget(self, members: int) -> int:
        """A datacenter's allowance per window (all of it below `min_members`)."""
        if not self.preserves(members):
            return members
        return max(self.minimum, math.floor(self.ratio * members))

    def type_budget(self, members: int, datacenter_members: int | None = None) -> int:
        """A (datacenter, type)'s allowance per window (all of it when its datacenter,
        of `datacenter_members`, is below `min_members`)."""
        if datacenter_members is not None and not self.preserves(datacenter_members):
            return members
        return max(self.type_minimum, math.floor(self.ratio * members))


class Action(enum.Enum):
    """What the plan does with one silent member."""

    EVICT = "evict"  # expired within the budget: removed
    SUSPECT = "suspect"  # expired beyond the budget: held as SUSPECT
    RELEASE = "release"  # a suspect the budget covers again: removed
    CEILING = "ceiling"  # a suspect past the hard ceiling: removed

    @property
    def removes(self) -> bool:
        """Whether the member is removed (all but SUSPECT)."""
        return self is not Action.SUSPECT

    @property
    def spends_budget(self) -> bool:
        """Whether the removal counts against the eviction budget."""
        return self in (Action.EVICT, Action.RELEASE)


@dataclass(frozen=True, slots=True)
class Decision:
    """The plan's action on one member, as read at its member revision."""

    key: NodeKey
    member: Member
    action: Action


@dataclass(frozen=True, slots=True)
class DatacenterBudget:
    """One datacenter's (or one type's in a datacenter) budget as the last plan saw it."""

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
    """One sweep's decisions, and the budgets per datacenter and per type they left."""

    decisions: tuple[Decision, ...] = ()
    datacenters: Mapping[str, DatacenterBudget] = field(default_factory=dict)
    types: Mapping[tuple[str, str], DatacenterBudget] = field(default_factory=dict)


def pools(key: NodeKey) -> tuple[str, tuple[str, str]]:
    """The budgets an eviction of `key` spends: its datacenter's and its type's there."""
    return key.datacenter, (key.datacenter, key.type)


class EvictionLedger:
    """When each budgeted eviction happened, per pool (a datacenter, or a (datacenter, type)),
    within the sliding window."""

    def __init__(self, window_seconds: float) -> None:
        self._window = window_seconds
        self._times: dict[Hashable, collections.deque[float]] = {}

    def spent(self, pool: Hashable, now: float) -> int:
        """Budgeted evictions of `pool` within the window before `now`."""
        times = self._times.get(pool)
        if not times:
            return 0
        while times and now - times[0] >= self._window:
            times.popleft()
        return len(times)

    def record(self, pool: Hashable, now: float) -> None:
        """Books one budgeted eviction of `pool` at `now`."""
        self._times.setdefault(pool, collections.deque()).append(now)

    def refund(self, pool: Hashable, now: float) -> None:
        """Takes back a recorded eviction that did not happen (its write failed). The newest
        records are the usual ones to take back (booked by the same sweep): O(1) then."""
        times = self._times.get(pool)
        if times and times[-1] == now:
            times.pop()
        elif times and now in times:
            times.remove(now)


def plan_evictions(
    expired: Iterable[tuple[NodeKey, Member]],
    members_per_type: Mapping[tuple[str, str], int],
    ledger: EvictionLedger,
    policy: BudgetPolicy,
    now: float,
) -> EvictionPlan:
    """Decides what happens to each member whose live key is gone, given how many members each
    (datacenter, type) has. `now` is wall-clock time (a suspect's `suspect_since` is written by
    whichever frontend led eviction then)."""
    fresh: dict[str, list[tuple[NodeKey, Member]]] = collections.defaultdict(list)
    held: dict[str, list[tuple[NodeKey, Member]]] = collections.defaultdict(list)
    for key, member in expired:
        suspect = member.registration.node.status is NodeStatus.SUSPECT
        (held if suspect else fresh)[key.datacenter].append((key, member))
    members_per_datacenter: collections.Counter[str] = collections.Counter()
    for (datacenter, _), count in members_per_type.items():
        members_per_datacenter[datacenter] += count

    decisions: list[Decision] = []
    budgets: dict[str, DatacenterBudget] = {}
    type_budgets: dict[tuple[str, str], DatacenterBudget] = {}
    for datacenter in sorted(fresh.keys() | held.keys()):
        spent = ledger.spent(datacenter, now)
        # The population at the window's start: evicted members still count towards the share.
        population = members_per_datacenter[datacenter] + spent
        budget = policy.budget(population)
        available = max(0, budget - spent)
        candidates = sorted(fresh[datacenter], key=lambda item: item[1].mod_revision)
        suspects = []
        for key, member in held[datacenter]:
            if now - member.registration.suspect_since >= policy.ceiling_seconds:
                decisions.append(Decision(key, member, Action.CEILING))
            else:
                suspects.append((key, member))
        silent_per_type = collections.Counter(key.type for key, _ in candidates + suspects)
        type_spent = {t: ledger.spent((datacenter, t), now) for t in silent_per_type}
        type_budget = {
            t: policy.type_budget(
                members_per_type.get((datacenter, t), 0) + type_spent[t], population
            )
            for t in silent_per_type
        }
        type_available = {t: max(0, type_budget[t] - type_spent[t]) for t in silent_per_type}
        silent = len(candidates) + len(suspects)
        still_suspect: collections.Counter[str] = collections.Counter()
        if silent <= available and all(
            silent_per_type[t] <= type_available[t] for t in silent_per_type
        ):
            decisions.extend(Decision(k, m, Action.EVICT) for k, m in candidates)
            decisions.extend(Decision(k, m, Action.RELEASE) for k, m in suspects)
        else:
            left = dict(type_available)
            for key, member in candidates:  # oldest registration first, within both allowances
                if available > 0 and left[key.type] > 0:
                    available -= 1
                    left[key.type] -= 1
                    decisions.append(Decision(key, member, Action.EVICT))
                else:
                    decisions.append(Decision(key, member, Action.SUSPECT))
                    still_suspect[key.type] += 1
            still_suspect.update(key.type for key, _ in suspects)
        budgets[datacenter] = DatacenterBudget(
            members=members_per_datacenter[datacenter],
            budget=budget,
            spent=spent,
            silent=silent,
            suspects=sum(still_suspect.values()),
        )
        for node_type, silent_of_type in silent_per_type.items():
            type_budgets[(datacenter, node_type)] = DatacenterBudget(
                members=members_per_type.get((datacenter, node_type), 0),
                budget=type_budget[node_type],
                spent=type_spent[node_type],
                silent=silent_of_type,
                suspects=still_suspect[node_type],
            )
    return EvictionPlan(tuple(decisions), budgets, type_budgets)
