"""Choosing a node per request from a watched list.

Available nodes only, the caller's zone first, in proportion to each node's weight. Pure logic,
no network.

The same reading of metadata as the registry's xDS service (so a Python session node and a gRPC
client of any language share out requests alike): `weight` is a whole number (clamped to
1..10,000; 1 when absent or malformed), `zone` names the node's zone. Nodes that are not UP
(DRAINING, SUSPECT, OUT_OF_SERVICE) get no new work, nor do nodes FAILING their health checks
(`Node.available`; the xDS service marks them UNHEALTHY alike).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Sequence

from client_sdk._models import Node, NodeList

MAX_WEIGHT = 10_000


def weight_of(node: Node) -> int:
    """The node's metadata `weight`, clamped to 1..10,000; 1 when absent or malformed."""
    text = node.metadata.get("weight", "")
    return max(1, min(MAX_WEIGHT, int(text))) if text.isdigit() else 1


class Picker:
    """Picks a node for each request from a list that changes under it (a `NodeWatch`'s).

    Nearest first: among the available nodes, those of the caller's zone (metadata `zone`) in
    its datacenter, else those of its datacenter, else any; within that group, at random in
    proportion to their weights. With no zone and no datacenter given, every available node is
    one group.

    Args:
        nodes: what to pick from, read at each pick (e.g. `watch.current`).
        zone: the caller's zone ("" : none).
        datacenter: the caller's datacenter ("" : none).
        rng: the source of randomness (tests give a seeded one).

    Example:
        picker = Picker(watch.current, zone="a", datacenter="dc1")
        node = picker.pick()  # None when no node is available
    """

    def __init__(
        self,
        nodes: Callable[[], NodeList | Iterable[Node]],
        *,
        zone: str = "",
        datacenter: str = "",
        rng: random.Random | None = None,
    ) -> None:
        self._nodes = nodes
        self.zone = zone
        self.datacenter = datacenter
        self._random = rng or random.Random()

    def candidates(self) -> list[Node]:
        """The nearest available group the next pick chooses from."""
        available = [node for node in self._nodes() if node.available]
        groups: list[Sequence[Node]] = []
        if self.zone:
            groups.append(
                [
                    n
                    for n in available
                    if n.metadata.get("zone") == self.zone
                    and (not self.datacenter or n.datacenter == self.datacenter)
                ]
            )
        if self.datacenter:
            groups.append([n for n in available if n.datacenter == self.datacenter])
        groups.append(available)
        return list(next((group for group in groups if group), []))

    def pick(self) -> Node | None:
        """A node of the nearest available group, in proportion to weight; None if none."""
        candidates = self.candidates()
        if not candidates:
            return None
        weights = [weight_of(node) for node in candidates]
        return self._random.choices(candidates, weights=weights)[0]
