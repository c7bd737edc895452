"""The health an owner's Register publishes (docs/design.md §13, D100, D103). Pure, no I/O: the
registry's Register (core/registry.py) asks, then writes what it is told.

- A new registration with checks starts PASSING (nothing is known against it yet), or as its
  owner gives it; without checks, as its owner reports it (UNCHECKED: none).
- A registration anew of a node that registered before (its identity is there) counts as a flap:
  a crash loop is held FAILING (damped) instead of flooding every subscriber with its comings and
  goings.
- An update of a registration with checks keeps the health its checks found; without checks, a
  report that flips the node's undamped health (a sidecar's) counts as a flap, and a damped node
  stays held until its penalty decays.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from registry_service.core.damping import DampingPolicy, decide
from registry_service.core.health_writes import damping_detail
from registry_service.domain import Check, FlapRecord, Health, Node, Registration
from registry_service.store.base import StoredNode


@dataclass(frozen=True, slots=True)
class OwnerHealth:
    """What to write with the registration: the node as published, the flap record (None:
    none), when a damped node is looked at again (0: it is not damped), and why, for the
    audit ("": nothing to say)."""

    node: Node
    flaps: FlapRecord | None = None
    damped_until: float = 0.0
    detail: str = ""


def created(
    policy: DampingPolicy, node: Node, checks: tuple[Check, ...], stored: StoredNode, now: float
) -> OwnerHealth:
    """A new registration of `node` (its incarnation set), over what was stored of it."""
    health = node.health
    if checks and health is Health.UNCHECKED:
        health = Health.PASSING  # nothing is known against it yet
    if stored.identity is None:  # its first registration (or one long forgotten): no flap
        return OwnerHealth(dataclasses.replace(node, health=health, damped=False))
    published = decide(policy, stored.flaps, health, was_damped=False, flaps=1, now=now)
    node = dataclasses.replace(node, health=published.health, damped=published.damped)
    if not published.damped:
        return OwnerHealth(node, published.flaps)
    detail = f"registered anew too often: {damping_detail(policy, published)}"
    return OwnerHealth(node, published.flaps, published.damped_until, detail)


def updated(
    policy: DampingPolicy,
    node: Node,
    current: Registration,
    stored: StoredNode,
    checks: tuple[Check, ...],
    now: float,
) -> OwnerHealth:
    """The owner's update of `current` to `node` (with `checks`, those it keeps)."""
    published_now = current.node
    if checks:
        health = published_now.health
        if health is Health.UNCHECKED:  # checks added now: nothing is known against it yet
            health = node.health if node.health is not Health.UNCHECKED else Health.PASSING
        node = dataclasses.replace(node, health=health, damped=published_now.damped)
        return OwnerHealth(node, None, current.damped_until)
    undamped = stored.flaps.health if stored.flaps else published_now.health
    reported = undamped if node.health is Health.UNCHECKED else node.health
    flipped = reported is not undamped and Health.UNCHECKED not in (reported, undamped)
    if not flipped and not published_now.damped:
        return OwnerHealth(dataclasses.replace(node, health=reported, damped=False))
    published = decide(
        policy, stored.flaps, reported, was_damped=published_now.damped, flaps=int(flipped), now=now
    )
    node = dataclasses.replace(node, health=published.health, damped=published.damped)
    # Still damped: the record keeps the time it was first expected back (whoever watches over
    # the node looks again then), so that the report alone rewrites nothing.
    damped_until = current.damped_until if published_now.damped else published.damped_until
    return OwnerHealth(node, published.flaps, damped_until if published.damped else 0.0)
