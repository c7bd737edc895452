"""Health checks the registry runs against a registered node (README "Health checks").

Plain frozen data, never generated protobuf classes.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class CheckKind(enum.Enum):
    """What a `Check` asks.

    Attributes:
        GRPC: grpc.health.v1 Check of a service; SERVING passes.
        HTTP: GET a path; a 2xx answer passes.
        TCP: a TCP connect; an open connection passes.
    """

    GRPC = "GRPC"
    HTTP = "HTTP"
    TCP = "TCP"


@dataclass(frozen=True, slots=True)
class Check:
    """A health check the registry runs against a registered node.

    The live frontends share the probing; a node whose check fails `failures_before_failing`
    times in a row turns FAILING (still listed, not offered for new work) and PASSING again after
    `passes_before_passing` passes. Zero for a duration or a threshold takes the registry's
    default (10 s interval, 2 s timeout, 3 failures, 2 passes); the registry's settings bound
    them. Make one with `Check.grpc`, `Check.http` or `Check.tcp`.

    Attributes:
        kind: GRPC, HTTP or TCP.
        service: GRPC: the service name asked for ("": the whole server).
        path: HTTP: the path asked for.
        port: the port probed at the node's host; 0: the node's own port.
        interval_seconds: time between two probes.
        timeout_seconds: time a probe may take (at most the interval).
        failures_before_failing: consecutive failed probes that turn the node FAILING.
        passes_before_passing: consecutive passed probes that turn it PASSING again.
    """

    kind: CheckKind
    service: str = ""
    path: str = "/"
    port: int = 0
    interval_seconds: float = 0.0
    timeout_seconds: float = 0.0
    failures_before_failing: int = 0
    passes_before_passing: int = 0

    @classmethod
    def grpc(
        cls,
        service: str = "",
        *,
        port: int = 0,
        interval_seconds: float = 0.0,
        timeout_seconds: float = 0.0,
        failures_before_failing: int = 0,
        passes_before_passing: int = 0,
    ) -> Check:
        """A grpc.health.v1 check: SERVING passes.

        Args:
            service: the service name asked for; "" asks about the whole server.
            port: the port at the node's host; 0: the node's own port.
            interval_seconds: time between probes; 0: the registry's default.
            timeout_seconds: time a probe may take; 0: the registry's default.
            failures_before_failing: failed probes in a row that turn it FAILING; 0: default.
            passes_before_passing: passed probes in a row that turn it PASSING; 0: default.

        Returns:
            The check.
        """
        return cls(
            CheckKind.GRPC,
            service=service,
            port=port,
            interval_seconds=interval_seconds,
            timeout_seconds=timeout_seconds,
            failures_before_failing=failures_before_failing,
            passes_before_passing=passes_before_passing,
        )

    @classmethod
    def http(
        cls,
        path: str = "/",
        *,
        port: int = 0,
        interval_seconds: float = 0.0,
        timeout_seconds: float = 0.0,
        failures_before_failing: int = 0,
        passes_before_passing: int = 0,
    ) -> Check:
        """An HTTP check: `GET path` answering 2xx passes (plain HTTP; no redirect followed).

        Args:
            path: the path asked for, starting with /.
            port: the port at the node's host; 0: the node's own port.
            interval_seconds: time between probes; 0: the registry's default.
            timeout_seconds: time a probe may take; 0: the registry's default.
            failures_before_failing: failed probes in a row that turn it FAILING; 0: default.
            passes_before_passing: passed probes in a row that turn it PASSING; 0: default.

        Returns:
            The check.
        """
        return cls(
            CheckKind.HTTP,
            path=path,
            port=port,
            interval_seconds=interval_seconds,
            timeout_seconds=timeout_seconds,
            failures_before_failing=failures_before_failing,
            passes_before_passing=passes_before_passing,
        )

    @classmethod
    def tcp(
        cls,
        *,
        port: int = 0,
        interval_seconds: float = 0.0,
        timeout_seconds: float = 0.0,
        failures_before_failing: int = 0,
        passes_before_passing: int = 0,
    ) -> Check:
        """A TCP check: a connection that opens passes.

        Args:
            port: the port at the node's host; 0: the node's own port.
            interval_seconds: time between probes; 0: the registry's default.
            timeout_seconds: time a probe may take; 0: the registry's default.
            failures_before_failing: failed probes in a row that turn it FAILING; 0: default.
            passes_before_passing: passed probes in a row that turn it PASSING; 0: default.

        Returns:
            The check.
        """
        return cls(
            CheckKind.TCP,
            port=port,
            interval_seconds=interval_seconds,
            timeout_seconds=timeout_seconds,
            failures_before_failing=failures_before_failing,
            passes_before_passing=passes_before_passing,
        )
