"""One prober for the three kinds of check (see the package's docstring)."""

from __future__ import annotations

import logging

from registry_service.core.check_state import ProbeResult, check_target, describe_check
from registry_service.domain import Check, CheckKind
from registry_service.probes.grpc_probe import GrpcProbes
from registry_service.probes.stream_probes import http_probe, tcp_probe

log = logging.getLogger(__name__)


def split_host_port(target: str) -> tuple[str, int]:
    """`host:port` or `[v6]:port` as (host, port), the host without brackets."""
    host, _, port = target.rpartition(":")
    return host.strip("[]"), int(port)


class NetworkProber:
    """Probes over the network; gRPC channels are kept per target between probes.

    `user_agent` names the prober to the probed service (gRPC's user agent, HTTP's User-Agent):
    a frontend sends its id, so a service's logs say which frontend probes it.
    """

    def __init__(self, user_agent: str = "noderegistry-health-check") -> None:
        self._user_agent = user_agent
        self._grpc = GrpcProbes(user_agent)

    async def probe(self, check: Check, address: str) -> ProbeResult:
        """Probes `check` of a node at `address` once, within the check's timeout."""
        target = check_target(check, address)
        try:
            if check.kind is CheckKind.GRPC:
                return await self._grpc.probe(target, check.service, check.timeout_seconds)
            host, port = split_host_port(target)
            if check.kind is CheckKind.HTTP:
                return await http_probe(
                    host, port, target, check.path, check.timeout_seconds, self._user_agent
                )
            return await tcp_probe(host, port, check.timeout_seconds)
        except Exception as err:  # a probe must answer; what went wrong is its output
            log.debug(
                "probe of %s failed unexpectedly", describe_check(check, address), exc_info=True
            )
            return ProbeResult(False, f"probe error: {type(err).__name__}: {err}")

    def keep_only(self, targets: set[str]) -> None:
        """Closes the gRPC channels of targets no longer probed."""
        self._grpc.keep_only(targets)

    async def close(self) -> None:
        """Closes the probes' connections (the keeper stops)."""
        await self._grpc.close()
