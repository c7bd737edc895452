"""Who may call what, and how much: each method's token scope (enforced by
rpc/interceptors.AuthInterceptor), and per-peer stream limits.

The tokens themselves (file format, scopes, digests) are `bearer_tokens.TokenTable`, which the
admin port uses too. Health checking and reflection never need a token (probes cannot present
one).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import grpc
import grpc.aio

from registry_service.errors import ResourceExhaustedError
from registry_service.security.bearer_tokens import TokenTable

_SERVICE = "/noderegistry.v1.Registry/"
METHOD_SCOPES = {
    f"{_SERVICE}Register": "register",
    f"{_SERVICE}KeepAlive": "register",
    f"{_SERVICE}Deregister": "register",
    f"{_SERVICE}GetNodes": "watch",
    f"{_SERVICE}WatchNodes": "watch",
    f"{_SERVICE}AckWatch": "watch",
    # xDS (docs/design.md §12): the node list for any gRPC client or Envoy; `watch` grants it too.
    "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources": "xds",
    "/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources": "xds",
}


def peer_identity(context: grpc.aio.ServicerContext, tokens: TokenTable) -> str:
    """Whom per-peer limits count against: the token's name, else the client certificate's
    common name, else the client's IP address (not its port: one client, many connections)."""
    principal = tokens.identify(context.invocation_metadata())
    if principal is not None:
        return f"token:{principal.name}"
    names = context.auth_context().get("x509_common_name")
    if names:
        return f"cert:{names[0].decode(errors='replace')}"
    peer = context.peer() or ""
    address = peer.split(":", 1)[-1]
    return f"ip:{address.rsplit(':', 1)[0]}"


class StreamCounter:
    """Open long-lived streams per peer, bounded by `limit`."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._open: dict[str, int] = {}

    @contextlib.contextmanager
    def hold(self, peer: str) -> Iterator[None]:
        count = self._open.get(peer, 0)
        if count >= self._limit:
            raise ResourceExhaustedError(
                f"{peer} already has {count} open streams on this frontend; the limit is "
                f"{self._limit} (max_streams_per_peer): close some, or share one KeepAlive "
                "stream among registrations"
            )
        self._open[peer] = count + 1
        try:
            yield
        finally:
            self._open[peer] -= 1
            if not self._open[peer]:
                del self._open[peer]


class TokenBucket:
    """`rate` events per second with bursts up to `rate`; `take()` says whether one may pass."""

    def __init__(self, rate: float, clock: Callable[[], float]) -> None:
        self._rate = rate
        self._clock = clock
        self._tokens = rate
        self._at = clock()

    def take(self) -> bool:
        now = self._clock()
        self._tokens = min(self._rate, self._tokens + (now - self._at) * self._rate)
        self._at = now
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False
