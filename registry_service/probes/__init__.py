"""Probes on the network (docs/design.md §13): a gRPC health Check, an HTTP GET, a TCP connect.

`NetworkProber` runs them for the registry's health checks (core/health_keeper.py is handed one
by the composition root) and for the sidecar (`noderegistry register --check`). It needs grpcio
and grpcio-health-checking (the `server` and `cli` extras) and nothing else of the service, and
never raises for what a probe finds: a refused connection or a timeout is a failed probe.
"""

from registry_service.probes.prober import NetworkProber, split_host_port

__all__ = ["NetworkProber", "split_host_port"]
