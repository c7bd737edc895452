"""The HTTP API's query parameters and event framing, without a server: strict parsing, the
errors' statuses from the one table, and the shape of one Server-Sent Event."""

from __future__ import annotations

import grpc
import pytest
from multidict import CIMultiDict, MultiDict

from registry_service import errors
from registry_service.domain import (
    Consistency,
    DatacenterNodes,
    DeltaMessage,
    NodeList,
    ProgressMessage,
    Scope,
    SnapshotMessage,
    WatchResume,
)
from registry_service.rpc.status import code_of_http_status, http_status, status_of
from registry_service.web.query import nodes_query, watch_query
from registry_service.web.sse import EventPosition, sse_event


def query(text: str) -> MultiDict[str]:
    return MultiDict(part.split("=", 1) for part in text.split("&") if part)


def test_a_scope_takes_repeated_and_comma_separated_names():
    parsed = nodes_query(query("datacenter=dc1,dc2&datacenter=dc3&type=data&type=meta, "), 300)
    assert parsed.scope == Scope(frozenset({"dc1", "dc2", "dc3"}), frozenset({"data", "meta"}))
    assert parsed.consistency is Consistency.LINEARIZABLE
    assert (parsed.index, parsed.wait_seconds) == (0, 300)


@pytest.mark.parametrize(
    ("wait", "seconds"),
    [("30s", 30.0), ("500ms", 0.5), ("2m", 120.0), ("1.5s", 1.5), ("7", 7.0), ("10m", 300.0)],
)
def test_a_wait_is_a_duration_cut_to_the_maximum(wait, seconds):
    parsed = nodes_query(query(f"index=4&wait={wait}"), 300)
    assert (parsed.index, parsed.wait_seconds) == (4, seconds)


def test_an_index_without_a_wait_waits_the_maximum_and_cached_is_read_in_any_case():
    parsed = nodes_query(query("index=9&consistency=CACHED"), 45)
    assert (parsed.index, parsed.wait_seconds, parsed.consistency) == (9, 45, Consistency.CACHED)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("index=-1", "index must be a revision, a whole number >= 0; got '-1'"),
        ("wait=5s", "wait needs an index"),
        ("index=3&wait=5h", "wait must be a duration such as 30s, 500ms or 2m"),
        ("consistency=strong", "consistency must be linearizable"),
        ("types=data", "unknown query parameter types: this path takes datacenter, type,"),
        ("wait=1s&wait=2s&index=1", "give wait once, not 2 times"),
    ],
)
def test_a_bad_parameter_is_an_invalid_argument_naming_it(text, message):
    with pytest.raises(errors.InvalidArgumentError, match=message):
        nodes_query(query(text), 300)


def test_the_last_event_id_header_wins_over_the_parameter():
    assert watch_query(query("type=data&last_event_id=5"), CIMultiDict()) == (
        Scope(types=frozenset({"data"})),
        WatchResume(5),
    )
    assert watch_query(query("last_event_id=5"), CIMultiDict({"Last-Event-ID": "9"}))[1] == (
        WatchResume(9)
    )
    assert watch_query(query(""), CIMultiDict())[1] == WatchResume()
    with pytest.raises(errors.InvalidArgumentError, match="Last-Event-ID header must be"):
        watch_query(query(""), CIMultiDict({"Last-Event-ID": "x"}))


def test_with_datacenter_revisions_an_event_id_is_a_vector():
    federated = query("datacenter_revisions=true")
    assert watch_query(federated, CIMultiDict({"Last-Event-ID": "812,dc2=455,dc3=7"}))[1] == (
        WatchResume(812, {"dc2": 455, "dc3": 7}, federated=True)
    )
    assert watch_query(federated, CIMultiDict())[1] == WatchResume(0, {}, federated=True)
    with pytest.raises(errors.InvalidArgumentError, match="it resumes a stream of"):
        watch_query(query(""), CIMultiDict({"Last-Event-ID": "812,dc2=455"}))
    with pytest.raises(errors.InvalidArgumentError, match="R,dc=R"):
        watch_query(federated, CIMultiDict({"Last-Event-ID": "812,dc2"}))
    with pytest.raises(errors.InvalidArgumentError, match="datacenter_revisions must be true"):
        watch_query(query("datacenter_revisions=maybe"), CIMultiDict())


def test_an_event_id_says_where_the_stream_stands():
    local, remote = DatacenterNodes("dc1", 40, ()), DatacenterNodes("dc2", 7, (), True, 9)
    unreached = DatacenterNodes("dc3", 0, (), True, 0)
    snapshot = SnapshotMessage(NodeList(41, (local, remote, unreached)))
    position = EventPosition(WatchResume(0, {}, federated=True))
    assert position.after(snapshot) == "41,dc2=9"
    assert position.after(DeltaMessage(12, (), datacenter="dc3")) == "41,dc2=9,dc3=12"
    assert position.after(ProgressMessage(44)) == "44,dc2=9,dc3=12"
    assert position.after(ProgressMessage(10, datacenter="dc2")) == "44,dc2=10,dc3=12"
    plain = EventPosition(WatchResume(3))
    assert plain.after(DeltaMessage(5, ())) == "5"


def test_an_event_is_its_name_its_id_and_one_line_of_json():
    assert sse_event("delta", "12,dc2=4", {"b": [1, 2], "a": "x\ny"}) == (
        b'event: delta\nid: 12,dc2=4\ndata: {"a":"x\\ny","b":[1,2]}\n\n'
    )
    assert sse_event("error", None, {}) == b"event: error\ndata: {}\n\n"


def test_every_registry_error_has_the_http_status_of_its_grpc_code():
    expected = {
        errors.InvalidArgumentError: 400,
        errors.NodeNotFoundError: 404,
        errors.SubscriptionNotFoundError: 404,
        errors.NodeConflictError: 409,
        errors.NodeHeldError: 409,
        errors.NotLiveError: 409,
        errors.ConcurrentModificationError: 409,
        errors.ResourceExhaustedError: 429,
        errors.StoreUnavailableError: 503,
        errors.ShuttingDownError: 503,
        errors.CorruptRecordError: 500,
    }
    for kind, status in expected.items():
        assert http_status(status_of(kind("x"))[0]) == status, kind
    assert code_of_http_status(404) is grpc.StatusCode.NOT_FOUND
    assert code_of_http_status(405) is grpc.StatusCode.UNIMPLEMENTED
    assert code_of_http_status(418) is grpc.StatusCode.UNKNOWN
