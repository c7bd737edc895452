"""What the CLI prints: the age and staleness of a list, and JSON of a stable shape."""

from __future__ import annotations

import json

from client_sdk import (
    Consistency,
    DatacenterState,
    EventType,
    Node,
    NodeEvent,
    NodeList,
    RemovalReason,
)
from registry_cli import output

NODE = Node("n1", "data", "dc1", "10.0.0.1:80", {"zone": "a"}, incarnation=2)


def listing(*, stale: bool = False, age: float = 0.0) -> NodeList:
    return NodeList(revision=42, datacenters={"dc1": (NODE,)}, cache_age_seconds=age, stale=stale)


def test_the_table_footer_gives_the_revision_and_the_age_of_a_cached_or_stale_list():
    assert output.nodes_table(listing(), Consistency.LINEARIZABLE).splitlines()[-1] == (
        "1 node(s) at revision 42"
    )
    assert output.nodes_table(listing(age=0.31), Consistency.CACHED).splitlines()[-1] == (
        "1 node(s) at revision 42; cached, 0.3s old"
    )
    assert output.nodes_table(listing(stale=True, age=12.34), Consistency.CACHED).splitlines()[
        -1
    ] == (
        "1 node(s) at revision 42; STALE: the frontend cannot reach etcd, this list is 12.3s old "
        "and may be out of date"
    )


def test_the_nodes_json_document_has_its_documented_shape():
    document = json.loads(output.nodes_json(listing(stale=True, age=3.5), Consistency.CACHED))
    assert document == {
        "revision": 42,
        "consistency": "CACHED",
        "stale": True,
        "age_seconds": 3.5,
        "count": 1,
        "datacenters": {
            "dc1": {
                "nodes": [
                    {
                        "datacenter": "dc1",
                        "type": "data",
                        "id": "n1",
                        "address": "10.0.0.1:80",
                        "status": "UP",
                        "health": "UNCHECKED",
                        "damped": False,
                        "incarnation": 2,
                        "metadata": {"zone": "a"},
                    }
                ]
            }
        },
    }


def test_a_stale_remote_datacenter_is_named_and_each_datacenter_carries_its_own_revision():
    far = Node("f1", "data", "dc2", "10.0.0.2:80")
    nodes = NodeList(
        revision=42,
        datacenters={"dc1": (NODE,), "dc2": (far,)},
        stale=True,
        datacenter_states={
            "dc1": DatacenterState(42, 40),
            "dc2": DatacenterState(900, 880, remote=True, stale=True, age_seconds=17.25),
        },
    )
    assert output.nodes_table(nodes, Consistency.LINEARIZABLE).splitlines()[-1] == (
        "2 node(s) at revision 42; datacenter dc2 STALE: its registry was last heard from 17.2s "
        "ago (its list is kept as it was)"
    )
    document = json.loads(output.nodes_json(nodes, Consistency.LINEARIZABLE))
    assert {k: v for k, v in document["datacenters"]["dc2"].items() if k != "nodes"} == {
        "revision": 900,
        "remote": True,
        "stale": True,
        "age_seconds": 17.25,
    }
    assert document["datacenters"]["dc1"]["revision"] == 42


def test_watch_lines_carry_a_reason_only_for_removals_and_say_when_the_list_is_stale():
    added = NodeEvent(EventType.ADDED, NODE, 43)
    removed = NodeEvent(EventType.REMOVED, NODE, 44, RemovalReason.EXPIRED)
    assert output.event_line(added) == "43 ADDED dc1/data/n1 10.0.0.1:80 incarnation=2 status=UP"
    assert output.event_line(removed).endswith(" reason=EXPIRED")
    assert "reason" not in json.loads(output.event_json(added))
    assert json.loads(output.event_json(removed))["reason"] == "EXPIRED"

    assert json.loads(output.staleness_json(True, 44, 6.25)) == {
        "type": "STALE",
        "revision": 44,
        "age_seconds": 6.25,
    }
    assert json.loads(output.staleness_json(False, 45, 0.0)) == {"type": "CURRENT", "revision": 45}
    assert output.staleness_line(True, 44, 6.25) == (
        "44 STALE the list may be out of date: the frontend last heard from etcd 6.2s ago"
    )
