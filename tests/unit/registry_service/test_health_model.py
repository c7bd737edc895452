"""The health checks' vocabulary (pure): what a healthy-only scope sees of each event, checks
validated with their defaults and limits, health and checks kept in the member record, the
flap record."""

from __future__ import annotations

import dataclasses

import pytest

from registry_service.core.check_state import check_target, describe_check
from registry_service.domain import (
    Check,
    CheckKind,
    DeltaMessage,
    EventType,
    FlapRecord,
    Health,
    Limits,
    Node,
    NodeEvent,
    NodeStatus,
    Registration,
    RemovalReason,
    Scope,
)
from registry_service.errors import InvalidArgumentError
from registry_service.selectors import parse_selector
from registry_service.store.records import (
    decode_flaps,
    decode_registration,
    encode_flaps,
    encode_registration,
)
from registry_service.validation import validate_checks

UP = Node("n1", "data", "dc1", "10.0.0.1:80", health=Health.PASSING)
FAILING = Node("n1", "data", "dc1", "10.0.0.1:80", health=Health.FAILING)
DRAINING = Node("n1", "data", "dc1", "10.0.0.1:80", status=NodeStatus.DRAINING)
HEALTHY = Scope(healthy_only=True)


def test_a_node_is_healthy_when_up_and_not_failing():
    assert UP.healthy and Node("n", "t", "d", "h:1").healthy
    assert not FAILING.healthy and not DRAINING.healthy


@pytest.mark.parametrize(
    ("event", "seen"),
    [
        (NodeEvent(EventType.ADDED, UP), (EventType.ADDED, RemovalReason.UNSPECIFIED)),
        (NodeEvent(EventType.ADDED, FAILING), None),
        (
            NodeEvent(EventType.UPDATED, FAILING, previous=UP),
            (EventType.REMOVED, RemovalReason.UNHEALTHY),
        ),
        (
            NodeEvent(EventType.UPDATED, UP, previous=FAILING),
            (EventType.ADDED, RemovalReason.UNSPECIFIED),
        ),
        (
            NodeEvent(EventType.UPDATED, DRAINING, previous=UP),
            (EventType.REMOVED, RemovalReason.UNHEALTHY),
        ),
        (NodeEvent(EventType.UPDATED, FAILING, previous=DRAINING), None),
        (
            NodeEvent(EventType.UPDATED, UP, previous=UP),
            (EventType.UPDATED, RemovalReason.UNSPECIFIED),
        ),
        (
            NodeEvent(EventType.REMOVED, UP, RemovalReason.EXPIRED),
            (EventType.REMOVED, RemovalReason.EXPIRED),
        ),
        (NodeEvent(EventType.REMOVED, FAILING, RemovalReason.EXPIRED), None),
        # The node before the update unknown (a followed datacenter's): the subscriber may hold
        # it healthy, so one that is not healthy now is removed, never left behind as healthy.
        (NodeEvent(EventType.UPDATED, FAILING), (EventType.REMOVED, RemovalReason.UNHEALTHY)),
        (NodeEvent(EventType.UPDATED, DRAINING), (EventType.REMOVED, RemovalReason.UNHEALTHY)),
        (NodeEvent(EventType.UPDATED, UP), (EventType.UPDATED, RemovalReason.UNSPECIFIED)),
    ],
)
def test_a_healthy_only_scope_sees_each_event_as_its_view_changes(event, seen):
    cut = HEALTHY.cut(event)
    assert (None if cut is None else (cut.type, cut.reason)) == seen
    assert Scope().cut(event) is event


def test_an_update_of_unknown_origin_turning_a_node_unhealthy_leaves_no_stale_healthy_entry():
    delta = DeltaMessage(8, (NodeEvent(EventType.UPDATED, FAILING),), datacenter="dc2")
    (removed,) = delta.within(HEALTHY).events
    assert (removed.type, removed.reason, removed.node) == (
        EventType.REMOVED,
        RemovalReason.UNHEALTHY,
        FAILING,
    )


def zoned(node: Node | None, zone: str = "a") -> Node | None:
    return None if node is None else dataclasses.replace(node, metadata={"zone": zone})


@pytest.mark.parametrize(
    ("before", "after", "seen"),
    [
        # One scope with a selector and healthy-only: a node leaves it when either takes it out.
        (zoned(UP), zoned(FAILING), (EventType.REMOVED, RemovalReason.UNHEALTHY)),
        (zoned(UP), zoned(UP), (EventType.UPDATED, RemovalReason.UNSPECIFIED)),
        (zoned(UP), zoned(UP, "b"), (EventType.REMOVED, RemovalReason.UNSPECIFIED)),
        # Out of the selector and failing at once: the metadata took it out, not its health.
        (zoned(UP), zoned(FAILING, "b"), (EventType.REMOVED, RemovalReason.UNSPECIFIED)),
        (zoned(FAILING), zoned(UP), (EventType.ADDED, RemovalReason.UNSPECIFIED)),
        (zoned(UP, "b"), zoned(UP), (EventType.ADDED, RemovalReason.UNSPECIFIED)),
        (zoned(UP, "b"), zoned(FAILING), None),
        (None, zoned(FAILING), (EventType.REMOVED, RemovalReason.UNHEALTHY)),
    ],
)
def test_a_selector_and_healthy_only_are_one_filter(before, after, seen):
    scope = Scope(selector=parse_selector("zone=a"), healthy_only=True)
    cut = scope.cut(NodeEvent(EventType.UPDATED, after, previous=before))
    assert (None if cut is None else (cut.type, cut.reason)) == seen
    assert scope.takes(zoned(UP)) and not scope.takes(zoned(FAILING)) and not scope.takes(UP)


def test_the_node_before_an_update_is_not_part_of_the_event():
    assert NodeEvent(EventType.UPDATED, UP, previous=FAILING) == NodeEvent(EventType.UPDATED, UP)


def test_a_delta_is_shared_whole_when_every_event_is_seen_as_it_is():
    event = NodeEvent(EventType.UPDATED, UP, previous=UP)
    delta = DeltaMessage(5, (event,))
    assert delta.within(HEALTHY) is delta
    turned = DeltaMessage(6, (NodeEvent(EventType.UPDATED, FAILING, previous=UP),))
    (removed,) = turned.within(HEALTHY).events
    assert removed.reason is RemovalReason.UNHEALTHY
    assert DeltaMessage(7, (NodeEvent(EventType.ADDED, FAILING),)).within(HEALTHY) is None


def test_checks_get_their_defaults_and_keep_what_they_ask():
    (grpc, http) = validate_checks(
        [
            Check(CheckKind.GRPC, service="svc", interval_seconds=0, timeout_seconds=0),
            Check(
                CheckKind.HTTP,
                path="/healthz",
                port=8080,
                interval_seconds=5,
                timeout_seconds=1,
                failures_before_failing=1,
                passes_before_passing=4,
            ),
        ],
        Limits(),
    )
    assert (grpc.interval_seconds, grpc.timeout_seconds) == (10.0, 2.0)
    assert (grpc.failures_before_failing, grpc.passes_before_passing) == (3, 2)
    assert (http.path, http.port, http.interval_seconds) == ("/healthz", 8080, 5.0)
    assert (http.failures_before_failing, http.passes_before_passing) == (1, 4)
    assert check_target(http, "10.0.0.1:80") == "10.0.0.1:8080"
    assert describe_check(http, "[::1]:80") == "http://[::1]:8080/healthz"
    short = validate_checks(
        [Check(CheckKind.TCP, interval_seconds=1.5, timeout_seconds=0)], Limits()
    )
    assert short[0].timeout_seconds == 1.5  # the default timeout, cut to the interval


@pytest.mark.parametrize(
    ("check", "message"),
    [
        (Check(CheckKind.TCP, interval_seconds=0.5), "interval_seconds 0.5 is below the limit 1"),
        (Check(CheckKind.TCP, timeout_seconds=11), "above the limit 10"),
        (Check(CheckKind.TCP, interval_seconds=2, timeout_seconds=3), "longer than its interval"),
        (Check(CheckKind.TCP, port=70000), "port 70000 must be from 1 to 65535"),
        (Check(CheckKind.GRPC, service="a b"), "must be a gRPC service name"),
        (Check(CheckKind.HTTP, path="/a b"), "must start with / and hold"),
        (Check(CheckKind.HTTP, service="svc"), "for gRPC checks only"),
        (Check(CheckKind.GRPC, path="/x"), "for HTTP checks only"),
    ],
)
def test_a_check_out_of_its_limits_is_refused_naming_it(check, message):
    with pytest.raises(InvalidArgumentError, match="checks\\[0\\]") as refused:
        validate_checks([check], Limits())
    assert message in str(refused.value)


def test_health_and_checks_round_trip_through_the_member_record_and_old_records_read_unchecked():
    check = Check(CheckKind.GRPC, service="svc", port=9600)
    node = Node("n", "data", "dc", "h:1", health=Health.FAILING, damped=True)
    registration = Registration(node, 7, 10, "hash", checks=(check,), damped_until=123.5)
    assert decode_registration(encode_registration(registration)) == registration
    plain = Registration(Node("n", "data", "dc", "h:1"), 7, 10, "hash")
    raw = encode_registration(plain)
    assert b"health" not in raw and b"checks" not in raw  # old readers see what they knew
    assert decode_registration(raw).node.health is Health.UNCHECKED


def test_the_flap_record_round_trips():
    record = FlapRecord(2967.5, 1700000000.25, Health.PASSING)
    assert decode_flaps(encode_flaps(record)) == record


def test_a_registry_that_runs_no_checks_says_so_and_what_to_do_instead():
    with pytest.raises(InvalidArgumentError, match="runs no health checks") as refused:
        validate_checks([Check(CheckKind.TCP)], Limits(health_checks_max_per_node=0))
    assert "noderegistry register --check" in str(refused.value)
    assert validate_checks([], Limits(health_checks_max_per_node=0)) == ()
