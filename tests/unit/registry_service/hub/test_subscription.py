"""One subscription without a hub: which written messages are owed an acknowledgement (the rule
every transport shares), what an acknowledgement counts, and whom it reports resyncs to."""

from __future__ import annotations

from collections.abc import Mapping

from registry_service.domain import (
    ChangeStage,
    DeltaMessage,
    NodeList,
    ProgressMessage,
    ResyncReason,
    Scope,
    SnapshotMessage,
    WatchMessage,
)
from registry_service.hub.subscription import Subscription


class FakeHub:
    """A SubscriptionSource at a fixed revision that records what it is told."""

    def __init__(self, revision: int = 10) -> None:
        self.revision = revision
        self.stale = False
        self.age_seconds = 0.0
        self.resyncs: list[ResyncReason] = []
        self.observed: list[tuple[ChangeStage, float]] = []
        self.unsubscribed: list[Subscription] = []

    def count_resync(self, reason: ResyncReason) -> None:
        self.resyncs.append(reason)

    def observe(self, stage: ChangeStage, seconds: float) -> None:
        self.observed.append((stage, seconds))

    def snapshot(
        self,
        scope: Scope,
        reason: ResyncReason | None = None,
        *,
        federated: bool = False,
        ahead: Mapping[str, int] | None = None,
    ) -> SnapshotMessage:
        return SnapshotMessage(NodeList(self.revision, ()), reason)

    def progress(self, scope: Scope, *, federated: bool = False) -> list[ProgressMessage]:
        return [ProgressMessage(self.revision)]

    def unsubscribe(self, subscription: Subscription) -> None:
        self.unsubscribed.append(subscription)


def subscription(hub: FakeHub, *initial: WatchMessage, acknowledging: bool) -> Subscription:
    return Subscription(hub, Scope(), initial, 100, 5.0, acknowledging=acknowledging)


async def test_only_this_registrys_snapshots_and_deltas_are_owed_an_acknowledgement():
    hub = FakeHub()
    snapshot = SnapshotMessage(NodeList(10, ()))
    subscribed = subscription(hub, snapshot, acknowledging=True)
    assert await anext(subscribed) is snapshot
    subscribed.written(ProgressMessage(10), at=100.0)
    subscribed.written(DeltaMessage(700, (), datacenter="dc2"), at=100.0)  # another registry's
    subscribed.written(SnapshotMessage(NodeList(700, ()), datacenter="dc2"), at=100.0)
    assert subscribed.unacked_since == 0  # nothing owed yet
    subscribed.written(snapshot, at=101.0)
    assert subscribed.unacked_since == 101.0
    subscribed.ack(10)
    assert subscribed.unacked_since == 0 and subscribed.acked_revision == 10
    assert [stage for stage, _ in hub.observed] == [ChangeStage.WRITTEN_TO_ACKED]


async def test_an_acknowledgement_counts_no_further_than_what_was_sent():
    hub = FakeHub()
    subscribed = subscription(hub, SnapshotMessage(NodeList(10, ())), acknowledging=False)
    assert not subscribed.acknowledging
    await anext(subscribed)
    subscribed.ack(99)  # a client that claims more than it was sent
    assert subscribed.acked_revision == 10
    assert subscribed.acknowledging  # it acknowledges: its messages are timed from now on


async def test_a_subscriber_that_never_acknowledges_owes_nothing():
    hub = FakeHub()
    snapshot = SnapshotMessage(NodeList(10, ()))
    subscribed = subscription(hub, snapshot, acknowledging=False)
    subscribed.written(await anext(subscribed), at=100.0)
    assert subscribed.unacked_since == 0
    subscribed.check_confirmed(now=10_000.0, deadline_seconds=1.0)
    assert not subscribed.resync_pending and hub.resyncs == []


async def test_an_overdue_acknowledgement_is_one_resync_reported_to_the_hub():
    hub = FakeHub()
    subscribed = subscription(hub, SnapshotMessage(NodeList(10, ())), acknowledging=True)
    subscribed.written(await anext(subscribed), at=100.0)
    subscribed.check_confirmed(now=100.5, deadline_seconds=1.0)
    assert not subscribed.resync_pending
    subscribed.check_confirmed(now=101.0, deadline_seconds=1.0)
    subscribed.check_confirmed(now=102.0, deadline_seconds=1.0)  # forgiven: owed once
    assert subscribed.resync_pending and hub.resyncs == [ResyncReason.UNCONFIRMED]
    resync = await anext(subscribed)
    assert isinstance(resync, SnapshotMessage)
    assert resync.resync_reason is ResyncReason.UNCONFIRMED
    subscribed.close()
    assert hub.unsubscribed == [subscribed]
