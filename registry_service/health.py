"""The vocabulary of health checks (docs/design.md §13): a node's published health, the checks
a registration carries, a probe's result and what flap damping remembers. Pure data, no I/O."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Health(enum.Enum):
    """A node's health as the registry publishes it (docs/design.md §13)."""

    UNCHECKED = "UNCHECKED"  # no check runs and none is reported: healthy while it renews
    PASSING = "PASSING"
    FAILING = "FAILING"  # listed, but not offered for new work


class CheckKind(enum.Enum):
    GRPC = "GRPC"  # grpc.health.v1 Check of a service: SERVING passes
    HTTP = "HTTP"  # GET a path: a 2xx answer passes
    TCP = "TCP"  # a TCP connect passes


# What a check gets for a field its registration leaves 0 (the proto's zero values).
CHECK_DEFAULT_INTERVAL_SECONDS = 10.0
CHECK_DEFAULT_TIMEOUT_SECONDS = 2.0
CHECK_DEFAULT_FAILURES = 3
CHECK_DEFAULT_PASSES = 2


@dataclass(frozen=True, slots=True)
class Check:
    """A check the registry runs against a node, at the node's host on `port` (0: its port).

    A probe passes or fails; `failures_before_failing` consecutive failures turn the check
    FAILING, `passes_before_passing` consecutive passes turn it PASSING again.
    """

    kind: CheckKind
    service: str = ""  # gRPC: the service asked for ("": the whole server)
    path: str = "/"  # HTTP: the path asked for
    port: int = 0
    interval_seconds: float = CHECK_DEFAULT_INTERVAL_SECONDS
    timeout_seconds: float = CHECK_DEFAULT_TIMEOUT_SECONDS
    failures_before_failing: int = CHECK_DEFAULT_FAILURES
    passes_before_passing: int = CHECK_DEFAULT_PASSES

    def target(self, address: str) -> str:
        """`host:port` to probe for a node at `address` (its host, this check's port if set)."""
        if not self.port:
            return address
        return f"{address.rpartition(':')[0]}:{self.port}"

    def describe(self, address: str) -> str:
        """The check as a URL, for logs and the audit: `grpc://10.0.0.5:9600/svc`."""
        target = self.target(address)
        if self.kind is CheckKind.GRPC:
            return f"grpc://{target}/{self.service}" if self.service else f"grpc://{target}"
        if self.kind is CheckKind.HTTP:
            return f"http://{target}{self.path}"
        return f"tcp://{target}"


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """One probe of a check: whether it passed, and what it saw (for the audit and the logs:
    `SERVING`, `HTTP 503`, `connection refused`, `timed out after 2s`)."""

    passed: bool
    output: str


@dataclass(frozen=True, slots=True)
class FlapRecord:
    """What flap damping remembers of a node (docs/design.md §13), beside its member record so
    that it outlives a registration: the penalty as of `at` (wall clock; it decays from there),
    and the node's latest health before damping (what it is published as once released)."""

    penalty: float
    at: float
    health: Health
