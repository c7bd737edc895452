"""A check's health from its probes: consecutive failures turn it FAILING, consecutive passes
turn it PASSING again (docs/design.md §13). Pure, no I/O: the registry's probes and the sidecar
(`noderegistry register --check`) both count with it.

A check whose health is not known yet (None: a node this frontend has just taken over while it is
damped, so its published health says nothing of its probes) takes the first probe's result as
it is: establishing a health is not a change of it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from registry_service.domain import Check, CheckKind, Health


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """One probe of a check: whether it passed, and what it saw (for the audit and the logs:
    `SERVING`, `HTTP 503`, `connection refused`, `timed out after 2s`)."""

    passed: bool
    output: str


def check_target(check: Check, address: str) -> str:
    """`host:port` to probe for a node at `address` (its host, the check's port if set)."""
    if not check.port:
        return address
    return f"{address.rpartition(':')[0]}:{check.port}"


def describe_check(check: Check, address: str) -> str:
    """The check as a URL, for logs and the audit: `grpc://10.0.0.5:9600/svc`."""
    target = check_target(check, address)
    if check.kind is CheckKind.GRPC:
        return f"grpc://{target}/{check.service}" if check.service else f"grpc://{target}"
    if check.kind is CheckKind.HTTP:
        return f"http://{target}{check.path}"
    return f"tcp://{target}"


class CheckState:
    """The thresholds of one check over its probes."""

    __slots__ = ("check", "failures", "health", "passes")

    def __init__(self, check: Check, health: Health | None) -> None:
        self.check = check
        self.health = health
        self.failures = 0  # consecutive failed probes
        self.passes = 0  # consecutive passed probes

    def observe(self, passed: bool) -> bool:
        """Counts one probe; True when it changed the check's health."""
        if self.health is None:
            self.health = Health.PASSING if passed else Health.FAILING
            return False
        if passed:
            self.failures = 0
            self.passes += 1
            if self.health is Health.FAILING and self.passes >= self.check.passes_before_passing:
                self.health = Health.PASSING
                return True
        else:
            self.passes = 0
            self.failures += 1
            if (
                self.health is not Health.FAILING
                and self.failures >= self.check.failures_before_failing
            ):
                self.health = Health.FAILING
                return True
        return False


def combined(states: Iterable[CheckState]) -> Health | None:
    """A node's health over its checks: FAILING when one fails, PASSING when all pass, None while
    one is not known yet."""
    healths = [state.health for state in states]
    if Health.FAILING in healths:
        return Health.FAILING
    if None in healths:
        return None
    return Health.PASSING


def starting_health(published: Health) -> Health:
    """What a node's checks start from when this frontend takes them over: its published health
    (a node without a published health yet passes until its probes say otherwise)."""
    return Health.FAILING if published is Health.FAILING else Health.PASSING
