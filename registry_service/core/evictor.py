"""Evictor: one frontend at a time turns "live key gone" into "member removed" (docs/design.md §6).

Leadership comes from an etcd election. Every removal is one transaction that also checks that the
member is unchanged, that its live key is still absent and that this frontend still leads (its
election key exists), so a stale view or a deposed leader can never remove a live node.

What happens to each expired member is decided by the eviction budget in
`core/self_preservation.py`: removed, held as SUSPECT, or (a suspect) released or removed at
the ceiling. In dry-run mode the evictor decides and reports, and writes nothing.

Nothing is decided during a store outage, nor for `outage_grace_seconds` after it (nodes still
renewing get the time to reach etcd and restore themselves first): the evictor asks the etcd
watch it is handed (`connection`) since when etcd answers. Its settings are one `EvictorConfig`,
the budget's included.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from registry_service.core.self_preservation import (
    Action,
    BudgetPolicy,
    Decision,
    EvictionLedger,
    EvictionPlan,
    plan_evictions,
    pools,
)
from registry_service.domain import AuditCause, NodeKey, NodeStatus
from registry_service.errors import StoreError
from registry_service.hub.watch_hub import WatchHub
from registry_service.retry import Backoff, ThrottledLog
from registry_service.store.base import EvictorWrite, Member, RegistryStore, StoredNode

log = logging.getLogger(__name__)

_CAUSES = {
    Action.EVICT: AuditCause.EXPIRED,
    Action.RELEASE: AuditCause.BUDGET_RELEASED,
    Action.CEILING: AuditCause.CEILING,
}
_CONCURRENT_WRITES = 4  # batches of decisions written at once
_DECISIONS_PER_WRITE = 100  # decisions handed to the store in one call
_RETRY_MAX_SECONDS = 5.0


@dataclass(frozen=True, slots=True)
class EvictorConfig:
    """How the evictor campaigns and sweeps, and its eviction budget."""

    lease_ttl_seconds: int = 5
    """Lease of the election key: a dead evictor is replaced within about this
    (`evictor_lease_ttl_seconds`)."""
    poll_seconds: float = 0.5
    """How often a frontend that is not the evictor checks whether it has become it
    (`evictor_poll_seconds`)."""
    reconcile_seconds: float = 5.0
    """Every member is re-checked at least this often, besides on changes
    (`evictor_reconcile_seconds`)."""
    dry_run: bool = False
    """Decides and reports, removes nothing (`evictor_dry_run`)."""
    outage_grace_seconds: float = 0.0
    """After etcd comes back, nothing is decided for this long, so that renewing nodes reach it
    first (`evictor_outage_grace_seconds`)."""
    policy: BudgetPolicy = field(default_factory=BudgetPolicy)
    """The eviction budget (self-preservation)."""


class StoreConnection(Protocol):
    """Whether etcd answers, and since when (the etcd watch knows: EtcdWatcher)."""

    @property
    def connected(self) -> bool: ...

    @property
    def connected_since(self) -> float:
        """Monotonic time `connected` last became true."""


@dataclass
class EvictorStatus:
    candidate: bool = False
    leader: bool = False
    leader_since: float = 0.0
    last_sweep: float = 0.0
    dry_run: bool = False
    plan: EvictionPlan = field(default_factory=EvictionPlan)
    removed: collections.Counter[str] = field(default_factory=collections.Counter)
    suspected: int = 0
    held_by_outage: bool = False


class Evictor:
    """Campaigns for leadership; while leading, removes expired members as soon as the hub sees
    their live key go, and re-checks every member at least every `reconcile_seconds`."""

    def __init__(
        self,
        store: RegistryStore,
        hub: WatchHub,
        config: EvictorConfig | None = None,
        *,
        candidate: str,
        clock: Callable[[], float] = time.time,
        connection: StoreConnection | None = None,
    ) -> None:
        """`connection`: etcd's reachability, for the outage grace (None: always settled)."""
        config = config or EvictorConfig()
        self._store = store
        self._hub = hub
        self._candidate = candidate
        self._poll = config.poll_seconds
        self._reconcile = config.reconcile_seconds
        self._policy = config.policy
        self._clock = clock
        self._connection = connection
        self._outage_grace = config.outage_grace_seconds
        self._ledger = EvictionLedger(self._policy.window_seconds)
        # Members this evictor removed (at which member revision) until the view shows it.
        self._written: dict[NodeKey, int] = {}
        self._election = store.election(
            "evictor", candidate, config.lease_ttl_seconds, config.poll_seconds
        )
        self.status = EvictorStatus(dry_run=config.dry_run)
        poll = config.poll_seconds
        self._backoff = Backoff(initial=poll, maximum=max(poll, _RETRY_MAX_SECONDS))
        self._failures = ThrottledLog(log, "evictor")

    @property
    def policy(self) -> BudgetPolicy:
        return self._policy

    def _store_settled(self) -> bool:
        """etcd has been reachable for the outage grace period (the evictor may act)."""
        connection = self._connection
        if connection is None:
            return True
        return (
            connection.connected
            and time.monotonic() - connection.connected_since >= self._outage_grace
        )

    async def run(self) -> None:
        """Campaigns, leads, and campaigns again, until cancelled. While etcd fails it, retries
        back off (up to `_RETRY_MAX_SECONDS`) and the log says so once per run of failures, then
        at most every half minute (D44), instead of once per poll."""
        while True:
            try:
                await self._lead_once()
            except StoreError as err:
                self._failures.failed(f"{err}; campaigning again")
                await self._backoff.wait()

    async def _lead_once(self) -> None:
        await self._election.stand()
        self.status.candidate = True
        await self._election.campaign()
        self._failures.succeeded()
        self._backoff.reset()
        self.status.leader, self.status.leader_since = True, time.time()
        log.info("evictor: %s leads eviction", self._candidate)
        lost = asyncio.create_task(self._election.lost())
        try:
            # Deposed (its key gone, D84): no sweep more, even before `lost` has run.
            while not lost.done() and not self._election.deposed:
                swept_revision = self._hub.revision
                await self.sweep()
                # While held by an outage, look again soon: the grace ends without any change.
                wait = self._poll if self.status.held_by_outage else self._reconcile
                # From the revision the sweep looked at, not from now: a lease that expired
                # while the sweep was writing is swept at once, not at the next change.
                changed = asyncio.create_task(self._hub.wait_for_revision(swept_revision + 1, wait))
                await asyncio.wait({lost, changed}, return_when=asyncio.FIRST_COMPLETED)
                changed.cancel()
            log.warning("evictor: %s lost its election lease", self._candidate)
        finally:
            self.status.leader = False
            lost.cancel()

    async def sweep(self) -> int:
        """Carries out what the budget decides for every expired member; returns how many were
        removed (none in dry-run mode)."""
        if not self._store_settled():
            # Store outage, or just after one: nodes still renewing get the time to reach etcd
            # again (and restore themselves) before anything is decided.
            self.status.held_by_outage = True
            return 0
        self.status.held_by_outage = False
        view = self._hub.view
        now = self._clock()
        expired = self._not_yet_written(view.expired())
        plan = plan_evictions(
            expired,
            self._sizes_without_pending(view.type_sizes()),
            self._ledger,
            self._policy,
            now,
        )
        self.status.plan, self.status.last_sweep = plan, now
        if self.status.dry_run or not plan.decisions:
            return 0
        writes = asyncio.Semaphore(_CONCURRENT_WRITES)
        decisions = list(plan.decisions)

        async def carry_out(batch: list[Decision]) -> list[bool]:
            async with writes:
                return await self._carry_out(batch, now)

        batches = [
            decisions[start : start + _DECISIONS_PER_WRITE]
            for start in range(0, len(decisions), _DECISIONS_PER_WRITE)
        ]
        done = await asyncio.gather(*(carry_out(batch) for batch in batches))
        return sum(
            1
            for ok, decision in zip((ok for batch in done for ok in batch), decisions, strict=True)
            if ok and decision.action.removes
        )

    async def _carry_out(self, decisions: list[Decision], now: float) -> list[bool]:
        """Writes a batch of decisions (the store groups them into few transactions); each
        applies or not on its own. Budgeted removals are booked before the write, so that
        concurrent writes never overspend the budget, and refunded when they did not happen."""
        writes = []
        for decision in decisions:
            key, member, action = decision.key, decision.member, decision.action
            registration = member.registration
            expected = StoredNode(
                key=key,
                revision=self._hub.revision,
                registration=registration,
                member_mod_revision=member.mod_revision,
            )
            suspect = None
            if action is Action.SUSPECT:
                suspect = dataclasses.replace(
                    registration,
                    node=dataclasses.replace(registration.node, status=NodeStatus.SUSPECT),
                    suspect_since=now,
                )
            elif action.spends_budget:
                for pool in pools(key):
                    self._ledger.record(pool, now)
            cause = AuditCause.SUSPECTED if suspect else _CAUSES[action]
            writes.append(EvictorWrite(expected, cause, self._budget_detail(key), suspect))
        revisions: list[int | None] = [None] * len(writes)
        try:
            revisions = await self._store.evict_many(writes, fence=self._election.fence)
        finally:
            for decision, revision in zip(decisions, revisions, strict=True):
                action = decision.action
                if revision is None and action.spends_budget:
                    for pool in pools(decision.key):  # it did not happen
                        self._ledger.refund(pool, now)
                elif revision is not None and action is Action.SUSPECT:
                    self.status.suspected += 1  # the store logs the transition
                elif revision is not None:
                    self.status.removed[_CAUSES[action].value] += 1
                    self._written[decision.key] = decision.member.mod_revision
        return [revision is not None for revision in revisions]

    def _not_yet_written(
        self, expired: list[tuple[NodeKey, Member]]
    ) -> list[tuple[NodeKey, Member]]:
        """The expired members this evictor has not already written a decision for. Under a mass
        expiry the watch runs behind the evictor's own writes: without this, each sweep would
        decide again on thousands of members it had just removed (failed guards, wasted etcd
        work). A record is forgotten once the view shows the member changed or gone."""
        current = {key: member.mod_revision for key, member in expired}
        self._written = {
            key: revision for key, revision in self._written.items() if current.get(key) == revision
        }
        return [(key, member) for key, member in expired if key not in self._written]

    def _sizes_without_pending(
        self, sizes: dict[tuple[str, str], int]
    ) -> dict[tuple[str, str], int]:
        """Members per (datacenter, type), less the removals this evictor wrote that the view
        does not show yet (`_written`, pruned by `_not_yet_written` just before). The ledger
        already counts them as spent, and the planner adds what was spent back to the members
        (the population at the window's start): counted in both, a sweep that ran before the
        watch caught up planned on a larger population and overspent the budget (issue 22)."""
        pending = collections.Counter((key.datacenter, key.type) for key in self._written)
        return {pool: count - pending[pool] for pool, count in sizes.items()}

    def _budget_detail(self, key: NodeKey) -> str:
        """The audit detail of a budgeted decision: both budgets as the plan saw them."""
        plan, window = self.status.plan, self._policy.window_seconds
        parts = []
        for name, budget in (
            (key.datacenter, plan.datacenters.get(key.datacenter)),
            (f"{key.datacenter}/{key.type}", plan.types.get((key.datacenter, key.type))),
        ):
            if budget is not None:
                parts.append(
                    f"budget {budget.budget} per {window:g}s in {name}, {budget.spent} spent, "
                    f"{budget.silent} silent"
                )
        return "; ".join(parts)

    async def close(self) -> None:
        """Resigns so that another frontend takes over at once."""
        with contextlib.suppress(StoreError):
            await self._election.resign()
