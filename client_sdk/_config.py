"""Configuration of the client and of its watches."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from client_sdk._errors import invalid_argument


@dataclass(frozen=True)
class ClientConfig:
    """How a RegistryClient talks to the registry's frontends.

    TLS is on exactly when `tls_ca_file` is set; a client certificate without it is refused
    rather than sent in plaintext.

    Raises:
        InvalidArgumentError: a value out of range, or TLS files that do not go together.

    Attributes:
        call_timeout_seconds: deadline of each unary call (Register, GetNodes, Deregister).
        tls_ca_file: CA bundle to verify the frontends' certificates; set it to use TLS.
        tls_cert_file: client certificate, for frontends that require mTLS.
        tls_key_file: the client certificate's key.
        bearer_token: sent as `authorization: Bearer <token>` on every call.
        retry_initial_seconds: first delay before retrying a failed renewal or re-registration.
        retry_max_seconds: longest such delay (retries never stop; the delay is jittered).
        register_overload_wait_seconds: how long `register()` and `update()` keep sending a
            Register that a frontend refused as overloaded (RESOURCE_EXHAUSTED with a retry
            pushback), each time after the pushback it named, before they raise
            ResourceExhaustedError; 0 raises at the first refusal. A registration that lost its
            lease and registers again waits out refusals for as long as they last.
        sleep: the sleep used between retries (tests inject a fast one).
    """

    call_timeout_seconds: float = 5.0
    tls_ca_file: str = ""
    tls_cert_file: str = ""
    tls_key_file: str = ""
    bearer_token: str = ""
    retry_initial_seconds: float = 0.1
    retry_max_seconds: float = 5.0
    register_overload_wait_seconds: float = 60.0
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep

    def __post_init__(self) -> None:
        _require(self, "call_timeout_seconds", self.call_timeout_seconds > 0, "must be > 0")
        _require(self, "retry_initial_seconds", self.retry_initial_seconds > 0, "must be > 0")
        _require(
            self,
            "register_overload_wait_seconds",
            self.register_overload_wait_seconds >= 0,
            "must be >= 0",
        )
        _require(
            self,
            "retry_max_seconds",
            self.retry_max_seconds >= self.retry_initial_seconds,
            "must be >= retry_initial_seconds",
        )
        _require(
            self,
            "tls_key_file",
            bool(self.tls_cert_file) == bool(self.tls_key_file),
            "and tls_cert_file go together (the client certificate and its key)",
        )
        _require(
            self,
            "tls_ca_file",
            bool(self.tls_ca_file) or not self.tls_cert_file,
            "is required with tls_cert_file (TLS is on only when it is set)",
        )


@dataclass(frozen=True)
class ShrinkReport:
    """What a NodeWatch held back, handed to `WatchConfig.on_suspicious_shrink`.

    Attributes:
        known: the nodes the watch's view had.
        remaining: the nodes the registry now reports.
        revision: the revision at which the shrink was held back.
    """

    known: int
    remaining: int
    revision: int


@dataclass(frozen=True)
class WatchConfig:
    """How a NodeWatch guards its local view (Eureka's client-side protection).

    Losing at least `shrink_ratio` of the nodes (and at least `shrink_min_nodes`) within
    `shrink_window_seconds`, for reasons other than deregistration, is suspicious: the watch stops
    applying losses, keeps its list (flagged stale), calls `on_suspicious_shrink`, and only accepts
    the shrink once it has lasted `shrink_hold_seconds` (or the nodes come back first). Losses
    within the budget are applied as they come; a `shrink_ratio` above 1 turns the guard off (a
    relay that passes the stream on as it is).

    Raises:
        InvalidArgumentError: a value out of range.

    Attributes:
        shrink_ratio: share of the nodes whose loss within the window is suspicious.
        shrink_min_nodes: smaller losses are never suspicious.
        shrink_window_seconds: how far back losses add up.
        shrink_hold_seconds: how long a suspicious shrink is held back before it is believed.
        on_suspicious_shrink: called (in the event loop) when a shrink is held back; a metric hook.
        ack_interval_seconds: how often, at most, the watch tells its frontend which revision it
            has applied (push confirmation, shown on the frontend's admin port); 0 turns it off.
        silence_timeout_seconds: a stream that brings nothing, not even a progress message, for
            this long is abandoned and resumed on the next frontend (a link that went silent
            without closing); keep it above the frontends' progress interval. 0: leave it to
            gRPC's keepalive (about 30 s).
    """

    shrink_ratio: float = 0.5
    shrink_min_nodes: int = 3
    shrink_window_seconds: float = 30.0
    shrink_hold_seconds: float = 60.0
    on_suspicious_shrink: Callable[[ShrinkReport], None] | None = None
    ack_interval_seconds: float = 1.0
    silence_timeout_seconds: float = 0.0

    def __post_init__(self) -> None:
        _require(self, "shrink_ratio", self.shrink_ratio > 0, "must be > 0")
        for name in (
            "shrink_min_nodes",
            "shrink_window_seconds",
            "shrink_hold_seconds",
            "ack_interval_seconds",
            "silence_timeout_seconds",
        ):
            _require(self, name, getattr(self, name) >= 0, "must be >= 0")


def _require(config: object, field: str, holds: bool, rule: str) -> None:
    """Raises InvalidArgumentError naming the field, its rule and its value unless `holds`."""
    if not holds:
        value = getattr(config, field)
        raise invalid_argument(f"{type(config).__name__}.{field} {rule}, not {value!r}")
