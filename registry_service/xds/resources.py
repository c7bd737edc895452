"""Node list -> xDS resources: pure functions, no I/O (docs/decisions.md D90-D93).

For a resource name N (names.py) a client gets three resources, the chain a gRPC client follows
for `xds:///N`:

- Listener N: an `api_listener` whose HttpConnectionManager carries its route inline (no RDS):
  every request goes to the cluster N.
- Cluster N: EDS over the ADS stream that asked, ROUND_ROBIN, or RING_HASH when the client's node
  metadata says `lb_policy: RING_HASH` (with no hash policy a stock client then picks at random
  in proportion to endpoint weights).
- ClusterLoadAssignment N: one locality per (datacenter, metadata `zone`). The client's own
  datacenter is priority 0 and every other datacenter priority 1 (failover), or everything is
  priority 0 when the client has no datacenter. Health follows the node's status: UP healthy,
  DRAINING draining, SUSPECT and OUT_OF_SERVICE unhealthy, and a node FAILING its health checks
  (or damped) unhealthy whatever its status (stock clients pick only healthy endpoints). An
  endpoint weighs its metadata `weight` (a whole number, clamped to 1..`MAX_WEIGHT`; 1 when
  absent or malformed); a locality weighs the sum of its healthy endpoints' weights (at least
  1): round robin ignores endpoint weights, so the locality weight carries them (docs/design.md
  §12). A node whose address is a host name, not an IP address, is left out (EDS endpoints are
  IP addresses; stock clients reject the whole assignment otherwise).
"""

from __future__ import annotations

import enum
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import (
    address_pb2,
    base_pb2,
    config_source_pb2,
    health_check_pb2,
)
from envoy.config.endpoint.v3 import endpoint_components_pb2, endpoint_pb2
from envoy.config.listener.v3 import api_listener_pb2, listener_pb2
from envoy.config.route.v3 import route_components_pb2, route_pb2
from envoy.extensions.filters.http.router.v3 import router_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from google.protobuf import any_pb2, wrappers_pb2
from google.protobuf.message import Message

from registry_service.domain import Health, Node, NodeStatus

_PREFIX = "type.googleapis.com/"
LISTENER = f"{_PREFIX}envoy.config.listener.v3.Listener"
ROUTE = f"{_PREFIX}envoy.config.route.v3.RouteConfiguration"
CLUSTER = f"{_PREFIX}envoy.config.cluster.v3.Cluster"
ENDPOINTS = f"{_PREFIX}envoy.config.endpoint.v3.ClusterLoadAssignment"
TYPE_NAMES = {LISTENER: "listener", ROUTE: "route", CLUSTER: "cluster", ENDPOINTS: "endpoints"}

WEIGHT_KEY = "weight"
ZONE_KEY = "zone"
MAX_WEIGHT = 10_000  # 64 endpoints at most weigh well inside a locality's uint32
DATACENTER_KEY = "datacenter"  # the client's node metadata may name its datacenter
LB_POLICY_KEY = "lb_policy"  # ... and ask for RING_HASH

_HEALTH = {
    NodeStatus.UP: health_check_pb2.HEALTHY,
    NodeStatus.DRAINING: health_check_pb2.DRAINING,
    NodeStatus.SUSPECT: health_check_pb2.UNHEALTHY,
    NodeStatus.OUT_OF_SERVICE: health_check_pb2.UNHEALTHY,
}


class LbPolicy(enum.Enum):
    """The load balancing a client asks for (metadata `lb_policy`); round robin by default."""

    ROUND_ROBIN = "ROUND_ROBIN"
    RING_HASH = "RING_HASH"


@dataclass(frozen=True, slots=True)
class Client:
    """What an xDS client says of itself that shapes its resources."""

    datacenter: str = ""
    lb_policy: LbPolicy = LbPolicy.ROUND_ROBIN


def client_of(node: base_pb2.Node, frontend_datacenter: str) -> Client:
    """The client's datacenter (node metadata `datacenter`, else its locality's region, else
    this frontend's) and the load balancing it asks for (metadata `lb_policy`)."""
    fields = node.metadata.fields
    datacenter = ""
    if DATACENTER_KEY in fields:
        datacenter = fields[DATACENTER_KEY].string_value
    datacenter = datacenter or node.locality.region or frontend_datacenter
    asked = fields[LB_POLICY_KEY].string_value.upper() if LB_POLICY_KEY in fields else ""
    policy = LbPolicy.RING_HASH if asked == LbPolicy.RING_HASH.value else LbPolicy.ROUND_ROBIN
    return Client(datacenter, policy)


def pack(message: Message) -> any_pb2.Any:
    """`message` packed in an Any, as xDS responses carry resources."""
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


def listener(name: str) -> listener_pb2.Listener:
    """The Listener of `name`: an api_listener routing everything to the cluster `name`."""
    route = route_pb2.RouteConfiguration(
        name=name,
        virtual_hosts=[
            route_components_pb2.VirtualHost(
                name=name,
                domains=["*"],
                routes=[
                    route_components_pb2.Route(
                        match=route_components_pb2.RouteMatch(prefix=""),
                        route=route_components_pb2.RouteAction(cluster=name),
                    )
                ],
            )
        ],
    )
    manager = hcm_pb2.HttpConnectionManager(
        stat_prefix="noderegistry",
        route_config=route,
        http_filters=[
            hcm_pb2.HttpFilter(
                name="envoy.filters.http.router", typed_config=pack(router_pb2.Router())
            )
        ],
    )
    return listener_pb2.Listener(
        name=name, api_listener=api_listener_pb2.ApiListener(api_listener=pack(manager))
    )


def cluster(name: str, lb_policy: LbPolicy) -> cluster_pb2.Cluster:
    """The Cluster of `name`: its endpoints by EDS over the same ADS stream."""
    policy = (
        cluster_pb2.Cluster.RING_HASH
        if lb_policy is LbPolicy.RING_HASH
        else cluster_pb2.Cluster.ROUND_ROBIN
    )
    return cluster_pb2.Cluster(
        name=name,
        type=cluster_pb2.Cluster.EDS,
        eds_cluster_config=cluster_pb2.Cluster.EdsClusterConfig(
            eds_config=config_source_pb2.ConfigSource(
                ads=config_source_pb2.AggregatedConfigSource(),
                resource_api_version=config_source_pb2.V3,
            ),
            service_name=name,
        ),
        lb_policy=policy,
    )


def weight_of(node: Node) -> int:
    """The node's metadata `weight`, clamped to 1..MAX_WEIGHT; 1 when absent or malformed."""
    text = node.metadata.get(WEIGHT_KEY, "")
    if not text.isdigit():
        return 1
    return max(1, min(MAX_WEIGHT, int(text)))


def health_of(node: Node) -> int:
    """The endpoint's health: its status's, but UNHEALTHY whatever its status while its health
    checks fail (a damped node is published FAILING too): no new calls go to it."""
    if node.health is Health.FAILING:
        return int(health_check_pb2.UNHEALTHY)
    health: int = _HEALTH[node.status]
    return health


def socket_address(address: str) -> tuple[str, int] | None:
    """`host:port` as (IP, port); None when the host is a name (no EDS endpoint for it)."""
    host, _, port = address.rpartition(":")
    host = host.strip("[]")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return None
    return host, int(port)


def load_assignment(
    name: str, nodes: Iterable[Node], own_datacenter: str = ""
) -> endpoint_pb2.ClusterLoadAssignment:
    """The ClusterLoadAssignment of `name` for a client in `own_datacenter` ("" : none)."""
    localities: dict[tuple[str, str], list[tuple[Node, tuple[str, int]]]] = {}
    for node in nodes:
        address = socket_address(node.address)
        if address is not None:
            zone = node.metadata.get(ZONE_KEY, "")
            localities.setdefault((node.datacenter, zone), []).append((node, address))
    remote_priority = 1 if any(dc == own_datacenter for dc, _ in localities) else 0
    endpoints = []
    for (datacenter, zone), members in sorted(localities.items()):
        healthy_weight = 0
        lb_endpoints = []
        for node, (host, port) in sorted(members, key=lambda member: member[0].id):
            weight = weight_of(node)
            health = health_of(node)
            if health == health_check_pb2.HEALTHY:
                healthy_weight += weight
            lb_endpoints.append(
                endpoint_components_pb2.LbEndpoint(
                    endpoint=endpoint_components_pb2.Endpoint(
                        address=address_pb2.Address(
                            socket_address=address_pb2.SocketAddress(address=host, port_value=port)
                        ),
                        hostname=node.id,
                    ),
                    health_status=health,
                    load_balancing_weight=wrappers_pb2.UInt32Value(value=weight),
                )
            )
        own = not own_datacenter or datacenter == own_datacenter
        endpoints.append(
            endpoint_components_pb2.LocalityLbEndpoints(
                locality=base_pb2.Locality(region=datacenter, zone=zone),
                lb_endpoints=lb_endpoints,
                load_balancing_weight=wrappers_pb2.UInt32Value(value=max(1, healthy_weight)),
                priority=0 if own else remote_priority,
            )
        )
    return endpoint_pb2.ClusterLoadAssignment(cluster_name=name, endpoints=endpoints)
