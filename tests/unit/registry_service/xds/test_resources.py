"""Node list -> xDS resources: every mapping rule of registry_service/xds/resources.py."""

from __future__ import annotations

import pytest
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import base_pb2, health_check_pb2
from envoy.extensions.filters.http.router.v3 import router_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from google.protobuf import struct_pb2

from registry_service.domain import Health, Node, NodeStatus
from registry_service.xds import resources
from registry_service.xds.resources import Client, LbPolicy


def node(
    node_id: str,
    datacenter: str = "dc1",
    address: str = "",
    status: NodeStatus = NodeStatus.UP,
    health: Health = Health.UNCHECKED,
    damped: bool = False,
    **metadata: str,
) -> Node:
    return Node(
        node_id,
        "data",
        datacenter,
        address or f"10.0.0.{len(node_id)}:7000",
        metadata,
        status=status,
        health=health,
        damped=damped,
    )


def localities(assignment):
    return {(loc.locality.region, loc.locality.zone): loc for loc in assignment.endpoints}


def test_the_listener_routes_everything_to_the_cluster_of_its_name():
    listener = resources.listener("data.dc1/zone=a")
    assert listener.name == "data.dc1/zone=a"
    manager = hcm_pb2.HttpConnectionManager()
    assert listener.api_listener.api_listener.Unpack(manager)
    (host,) = manager.route_config.virtual_hosts
    assert list(host.domains) == ["*"]
    (route,) = host.routes
    assert route.match.prefix == "" and route.route.cluster == "data.dc1/zone=a"
    (router,) = manager.http_filters
    assert router.typed_config.Is(router_pb2.Router.DESCRIPTOR)


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        (LbPolicy.ROUND_ROBIN, cluster_pb2.Cluster.ROUND_ROBIN),
        (LbPolicy.RING_HASH, cluster_pb2.Cluster.RING_HASH),
    ],
)
def test_the_cluster_takes_its_endpoints_over_ads(policy, expected):
    cluster = resources.cluster("data", policy)
    assert cluster.type == cluster_pb2.Cluster.EDS and cluster.lb_policy == expected
    assert cluster.eds_cluster_config.eds_config.HasField("ads")
    assert cluster.eds_cluster_config.service_name == "data"


def test_one_locality_per_datacenter_and_zone():
    assignment = resources.load_assignment(
        "data",
        [
            node("a1", zone="a"),
            node("a2", zone="a"),
            node("b1", zone="b"),
            node("n"),
            node("x", "dc2", zone="a"),
        ],
    )
    assert assignment.cluster_name == "data"
    found = localities(assignment)
    assert set(found) == {("dc1", "a"), ("dc1", "b"), ("dc1", ""), ("dc2", "a")}
    assert [e.endpoint.hostname for e in found[("dc1", "a")].lb_endpoints] == ["a1", "a2"]


def test_the_clients_datacenter_comes_first_and_the_others_fail_over():
    nodes = [node("a", "dc1"), node("b", "dc2"), node("c", "dc3")]
    priorities = {
        region: loc.priority
        for (region, _), loc in localities(resources.load_assignment("d", nodes, "dc2")).items()
    }
    assert priorities == {"dc1": 1, "dc2": 0, "dc3": 1}
    # No datacenter of its own, or none of its datacenter's nodes: everything at priority 0.
    for own in ("", "dc9"):
        assignment = resources.load_assignment("d", nodes, own)
        assert {loc.priority for loc in assignment.endpoints} == {0}


@pytest.mark.parametrize(
    ("status", "health"),
    [
        (NodeStatus.UP, health_check_pb2.HEALTHY),
        (NodeStatus.DRAINING, health_check_pb2.DRAINING),
        (NodeStatus.SUSPECT, health_check_pb2.UNHEALTHY),
        (NodeStatus.OUT_OF_SERVICE, health_check_pb2.UNHEALTHY),
    ],
)
def test_health_follows_the_status(status, health):
    assignment = resources.load_assignment("d", [node("n", status=status)])
    assert assignment.endpoints[0].lb_endpoints[0].health_status == health


@pytest.mark.parametrize(
    ("status", "health", "damped", "expected"),
    [
        (NodeStatus.UP, Health.PASSING, False, health_check_pb2.HEALTHY),
        (NodeStatus.UP, Health.UNCHECKED, False, health_check_pb2.HEALTHY),
        (NodeStatus.UP, Health.FAILING, False, health_check_pb2.UNHEALTHY),
        (NodeStatus.UP, Health.FAILING, True, health_check_pb2.UNHEALTHY),  # damped
        (NodeStatus.DRAINING, Health.FAILING, False, health_check_pb2.UNHEALTHY),
        (NodeStatus.DRAINING, Health.PASSING, False, health_check_pb2.DRAINING),
    ],
)
def test_a_node_failing_its_checks_is_unhealthy_whatever_its_status(
    status, health, damped, expected
):
    assignment = resources.load_assignment(
        "d", [node("n", status=status, health=health, damped=damped)]
    )
    assert assignment.endpoints[0].lb_endpoints[0].health_status == expected


def test_a_failing_node_adds_nothing_to_its_localitys_weight():
    assignment = resources.load_assignment(
        "d",
        [node("a1", zone="a", weight="3"), node("a2", zone="a", weight="4", health=Health.FAILING)],
    )
    assert localities(assignment)[("dc1", "a")].load_balancing_weight.value == 3


@pytest.mark.parametrize(
    ("given", "weight"),
    [(None, 1), ("3", 3), ("0", 1), ("-2", 1), ("abc", 1), ("2.5", 1), ("999999", 10_000)],
)
def test_the_endpoint_weight_is_metadata_weight_clamped(given, weight):
    metadata = {} if given is None else {"weight": given}
    assignment = resources.load_assignment("d", [node("n", **metadata)])
    endpoint = assignment.endpoints[0].lb_endpoints[0]
    assert endpoint.load_balancing_weight.value == weight


def test_a_locality_weighs_the_sum_of_its_healthy_endpoints():
    assignment = resources.load_assignment(
        "d",
        [
            node("a1", zone="a", weight="3"),
            node("a2", zone="a", weight="2"),
            node("a3", zone="a", weight="7", status=NodeStatus.DRAINING),
            node("b1", zone="b", status=NodeStatus.SUSPECT),
        ],
    )
    found = localities(assignment)
    assert found[("dc1", "a")].load_balancing_weight.value == 5
    assert found[("dc1", "b")].load_balancing_weight.value == 1  # none healthy: never 0


def test_addresses_become_socket_addresses_and_host_names_are_left_out():
    assignment = resources.load_assignment(
        "d",
        [
            node("v4", address="127.0.0.1:50"),
            node("v6", address="[::1]:60"),
            node("named", address="db.example:70"),
        ],
    )
    endpoints = {
        e.endpoint.hostname: e.endpoint.address.socket_address
        for loc in assignment.endpoints
        for e in loc.lb_endpoints
    }
    assert set(endpoints) == {"v4", "v6"}
    assert (endpoints["v4"].address, endpoints["v4"].port_value) == ("127.0.0.1", 50)
    assert (endpoints["v6"].address, endpoints["v6"].port_value) == ("::1", 60)


def test_no_nodes_is_an_empty_assignment():
    assert not resources.load_assignment("d", []).endpoints


def test_the_client_says_its_datacenter_and_load_balancing():
    metadata = struct_pb2.Struct()
    metadata.update({"datacenter": "dc2", "lb_policy": "ring_hash"})
    given = base_pb2.Node(id="c", metadata=metadata, locality=base_pb2.Locality(region="dc3"))
    assert resources.client_of(given, "dc1") == Client("dc2", LbPolicy.RING_HASH)
    by_region = base_pb2.Node(id="c", locality=base_pb2.Locality(region="dc3"))
    assert resources.client_of(by_region, "dc1") == Client("dc3", LbPolicy.ROUND_ROBIN)
    assert resources.client_of(base_pb2.Node(id="c"), "dc1") == Client("dc1")
    metadata.update({"lb_policy": "MAGLEV"})  # not one we serve: round robin
    assert resources.client_of(base_pb2.Node(metadata=metadata), "") == Client("dc2")
