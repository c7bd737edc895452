"""The connection to an etcd cluster: endpoints, channels, auth, and one unary call with retry.

- several endpoints: unary calls go round robin over them; streams (watch, lease keepalive) stay
  on one endpoint until it fails them;
- health per endpoint (D83): an endpoint that failed a call or a stream (unavailable, timed out,
  frozen) is avoided by calls and streams until it answers a probe (`Maintenance.Status`, every
  `outage_detection_seconds`), not for a fixed time: a frozen member (a stopped process, a paused
  VM) keeps its connections up and would make each call sent to it wait out its deadline. When
  every endpoint is avoided (an election), calls go round robin over those that failed fast (no
  leader: they answer, and fail at once until there is one), else over all of them;
- TLS/mTLS and username/password auth, re-authenticating when etcd says the token expired; new
  TLS files (a rotated client certificate) take effect on new channels (`replace_credentials`);
- `hasleader` metadata on every call, so a member without a leader fails fast instead of serving;
- etcd's errors become the store's own types in one place (`translate`), as etcd's client maps
  its `rpctypes`: nobody above this module looks at a grpc error or its text.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar, cast

import grpc
import grpc.aio

from registry_service.errors import (
    LeaseNotFoundError,
    StoreAccessError,
    StoreCompactedError,
    StoreError,
    StoreUnavailableError,
)
from registry_service.store._etcdpb import rpc_pb2 as pb
from registry_service.store._etcdpb import rpc_pb2_grpc as pb_grpc
from registry_service.telemetry import tracing

log = logging.getLogger(__name__)

T = TypeVar("T")
_Stub = TypeVar("_Stub")

_CHANNEL_OPTIONS = [
    ("grpc.keepalive_time_ms", 10_000),
    ("grpc.keepalive_timeout_ms", 5_000),
    # etcd's server refuses pings while no call is open (PermitWithoutStream is false) and answers
    # them with GOAWAY "too_many_pings": ping only during calls; a frontend always has its watch.
    ("grpc.keepalive_permit_without_calls", 0),
    ("grpc.http2.max_pings_without_data", 0),
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 2_000),
    ("grpc.max_receive_message_length", 256 * 1024 * 1024),
    ("grpc.max_send_message_length", 16 * 1024 * 1024),
]
_AUTH_ERRORS = ("invalid auth token", "user name is empty", "authentication failed")

Method = Callable[[str], Callable[..., Awaitable[T]]]
"""Picks the stub method of a unary call on an endpoint: `lambda endpoint: <KV stub>.Range`."""


@dataclass(frozen=True)
class EtcdConfig:
    """Where etcd is and how to reach it."""

    endpoints: tuple[str, ...]
    """`host:port` of each member; calls spread over them, streams move on when one fails."""
    username: str = ""
    """etcd user (empty: etcd without auth)."""
    password: str = ""
    ca_file: str = ""
    """CA bundle of etcd's server certificates; empty: plaintext."""
    cert_file: str = ""
    """Client certificate, for etcd requiring mTLS."""
    key_file: str = ""
    request_timeout_seconds: float = 5.0
    """Deadline of each unary call and of each lease renewal."""
    watch_stale_seconds: float = 10.0
    """A watch stream silent this long, despite progress requests, is reopened."""
    outage_detection_seconds: float = 1.0
    """Deadline of the quorum probe, sent when nothing confirmed etcd for half of this: etcd
    without a leader or quorum is noticed within 1.75 times this (EtcdWatcher)."""


class EtcdConnection:
    """Channels to every endpoint of one etcd cluster, and the auth token they share."""

    def __init__(
        self, config: EtcdConfig, observe: Callable[[str, float, str], None] | None = None
    ) -> None:
        """`observe(operation, seconds, code)` is called after every unary call attempt, with the
        gRPC code's name (`OK` when it succeeded): a metrics hook."""
        if not config.endpoints:
            raise ValueError("at least one etcd endpoint is required")
        self.config = config
        self._credentials = load_credentials(config)
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._retired: list[grpc.aio.Channel] = []
        self._stubs: dict[tuple[object, str], object] = {}
        self._current = 0
        self._round_robin = 0
        # Endpoints that failed, each with the task probing it until it answers; those of them
        # that left a call waiting out its deadline (frozen, most likely).
        self._avoided: dict[str, asyncio.Task[None]] = {}
        self._timed_out: set[str] = set()
        self._token = ""
        self._auth_lock = asyncio.Lock()
        self._observe = observe
        self._in_flight: set[asyncio.Timeout] = set()
        self._abort_reason = ""

    @property
    def endpoint(self) -> str:
        """The endpoint streams (watch, lease keepalive) use until it fails."""
        return self.config.endpoints[self._current % len(self.config.endpoints)]

    def _channel(self, endpoint: str) -> grpc.aio.Channel:
        channel = self._channels.get(endpoint)
        if channel is None:
            if self._credentials is not None:
                channel = grpc.aio.secure_channel(endpoint, self._credentials, _CHANNEL_OPTIONS)
            else:
                channel = grpc.aio.insecure_channel(endpoint, _CHANNEL_OPTIONS)
            self._channels[endpoint] = channel
        return channel

    def stub(self, kind: Callable[[grpc.aio.Channel], _Stub], endpoint: str | None = None) -> _Stub:
        """One stub of each kind per endpoint (the streams' endpoint by default): building one
        costs as much as a small call."""
        endpoint = endpoint or self.endpoint
        stub = self._stubs.get((kind, endpoint))
        if stub is None:
            stub = self._stubs[(kind, endpoint)] = kind(self._channel(endpoint))
        return cast(_Stub, stub)

    def _healthy(self, endpoint: str) -> bool:
        return endpoint not in self._avoided

    @property
    def avoided(self) -> frozenset[str]:
        """The endpoints that failed and have not answered a probe since."""
        return frozenset(self._avoided)

    def _next_endpoint(self) -> str:
        """Round robin over the endpoints not avoided; when all are, over those that failed
        fast, else over all of them."""
        endpoints = self.config.endpoints
        for usable in (self._healthy, self._failed_fast, lambda endpoint: True):
            for _ in range(len(endpoints)):
                self._round_robin += 1
                endpoint = endpoints[self._round_robin % len(endpoints)]
                if usable(endpoint):
                    return endpoint
        raise AssertionError("unreachable: the last rule takes any endpoint")

    def _failed_fast(self, endpoint: str) -> bool:
        return endpoint not in self._timed_out

    def _mark_down(self, endpoint: str, *, timed_out: bool = False) -> None:
        """`endpoint` failed (`timed_out`: a call waited out its deadline there): avoided until
        a probe finds it answering."""
        if len(self.config.endpoints) < 2:
            return
        if timed_out:
            self._timed_out.add(endpoint)
        if endpoint in self._avoided:
            return
        log.warning("etcd: %s failed; avoided until it answers a probe", endpoint)
        self._avoided[endpoint] = asyncio.get_running_loop().create_task(
            self._probe_until_back(endpoint), name=f"etcd-probe-{endpoint}"
        )

    def _answered(self, endpoint: str) -> None:
        """A call to an avoided endpoint succeeded (every endpoint was avoided): it is back."""
        probe = self._avoided.pop(endpoint, None)
        self._timed_out.discard(endpoint)
        if probe is not None:
            probe.cancel()
            log.info("etcd: %s answers again", endpoint)

    async def _probe_until_back(self, endpoint: str) -> None:
        """Asks `endpoint` for its status every `outage_detection_seconds` (that long to answer)
        until it answers; then calls and streams may use it again. A member without a leader
        answers too: calls to it fail at once (`hasleader`), they never wait out a deadline."""
        seconds = self.config.outage_detection_seconds
        while True:
            await asyncio.sleep(seconds)
            try:
                await self.stub(pb_grpc.MaintenanceStub, endpoint).Status(
                    pb.StatusRequest(), metadata=await self.metadata(leader=False), timeout=seconds
                )
            except (grpc.aio.AioRpcError, StoreError):
                continue
            break
        del self._avoided[endpoint]
        self._timed_out.discard(endpoint)
        log.info("etcd: %s answers again", endpoint)

    def stream_failed(self, err: BaseException) -> None:
        """A stream broke with err: a refused auth token is fetched anew on the next call, and
        streams move to the next endpoint (the current one just failed them)."""
        if isinstance(err, grpc.aio.AioRpcError) and self._is_auth_error(err):
            self._token = ""
        if len(self.config.endpoints) > 1:
            self._mark_down(self.endpoint, timed_out=isinstance(err, TimeoutError))
            failed = self._current
            for _ in range(len(self.config.endpoints) - 1):
                self._current += 1
                if self._healthy(self.endpoint):
                    break
            else:  # every other one is avoided too (an election, say): the next one anyway
                self._current = failed + 1
            log.info("etcd: streams move to endpoint %s", self.endpoint)

    async def metadata(self, *, leader: bool = True) -> list[tuple[str, str]]:
        """What every call carries: `hasleader` (but the probe's: a member without a leader
        answers it), and the auth token when etcd has users."""
        metadata = [("hasleader", "true")] if leader else []
        if self.config.username:
            if not self._token:
                await self._authenticate()
            metadata.append(("token", self._token))
        return metadata

    async def _authenticate(self) -> None:
        async with self._auth_lock:
            if self._token:
                return
            try:
                response = await self.stub(pb_grpc.AuthStub).Authenticate(
                    pb.AuthenticateRequest(
                        name=self.config.username, password=self.config.password
                    ),
                    timeout=self.config.request_timeout_seconds,
                )
            except grpc.aio.AioRpcError as err:
                raise translate(err, "authenticate") from err
            self._token = response.token

    def _is_auth_error(self, err: grpc.aio.AioRpcError) -> bool:
        return bool(self.config.username) and (
            err.code() == grpc.StatusCode.UNAUTHENTICATED
            or any(text in (err.details() or "") for text in _AUTH_ERRORS)
        )

    async def call(
        self,
        operation: str,
        method: Method[T],
        request: object,
        *,
        idempotent: bool,
        endpoint: str | None = None,
        timeout_seconds: float | None = None,
    ) -> T:
        """Runs one unary call on the next endpoint (round robin), with auth.

        Reads (idempotent) are retried on each other endpoint when one is unavailable. Writes are
        not retried: their outcome is unknown, and the caller (a compare-guarded transaction
        or a retried Register with its idempotency key) is the one that can tell. `endpoint` pins
        the call to one endpoint (no retry elsewhere); `timeout_seconds` replaces the request
        timeout. A call still waiting when `abort_calls` runs fails at once.

        Raises:
            StoreError: the subclass that says what happened (see `translate`).
        """
        attempts = len(self.config.endpoints) if idempotent and endpoint is None else 1
        timeout = timeout_seconds or self.config.request_timeout_seconds
        reauthenticated = False
        attempt = 0
        while True:
            target = endpoint or self._next_endpoint()
            metadata = await self.metadata()
            started = time.perf_counter()
            code = "OK"
            try:
                with tracing.span(f"etcd {operation}", {"db.system": "etcd"}):
                    async with asyncio.timeout(None) as abortable:
                        self._in_flight.add(abortable)
                        try:
                            response = await method(target)(
                                request, metadata=metadata, timeout=timeout
                            )
                            if target in self._avoided:
                                self._answered(target)
                            return response
                        finally:
                            self._in_flight.discard(abortable)
            except TimeoutError:  # only abort_calls sets a deadline on `abortable`
                code = "CANCELLED"
                raise StoreUnavailableError(
                    f"etcd {operation} abandoned: {self._abort_reason}; the outcome is unknown, "
                    "retry (on another frontend while this one cannot reach etcd)"
                ) from None
            except grpc.aio.AioRpcError as err:
                code = err.code().name
                if self._is_auth_error(err) and not reauthenticated:
                    self._token, reauthenticated = "", True
                    continue
                if err.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                    timed_out = err.code() == grpc.StatusCode.DEADLINE_EXCEEDED
                    self._mark_down(target, timed_out=timed_out)
                    attempt += 1
                    if attempt < attempts:
                        continue
                raise translate(err, operation, timeout) from err
            finally:
                if self._observe is not None:
                    self._observe(operation, time.perf_counter() - started, code)

    def abort_calls(self, reason: str) -> int:
        """Ends every unary call now in flight with StoreUnavailableError naming `reason` (etcd
        was found without quorum: they would each wait out their deadline); returns how many."""
        self._abort_reason = reason
        now = asyncio.get_running_loop().time()
        waiting = [call for call in self._in_flight if not call.expired()]
        for call in waiting:
            call.reschedule(now)
        return len(waiting)

    def replace_credentials(self, credentials: grpc.ChannelCredentials) -> None:
        """Calls from now on go over new channels with `credentials` (etcd's TLS files changed).
        The old channels are not closed here: streams on them (the watch, the lease keepalive)
        go on until they end by themselves, and move to the new channels when they reopen; they
        close with the connection."""
        self._credentials = credentials
        self._retired.extend(self._channels.values())
        self._channels = {}
        self._stubs = {}

    async def close(self) -> None:
        for probe in self._avoided.values():
            probe.cancel()
        self._avoided.clear()
        self._timed_out.clear()
        for channel in (*self._channels.values(), *self._retired):
            await channel.close()
        self._channels.clear()
        self._retired.clear()
        self._stubs.clear()


def load_credentials(config: EtcdConfig) -> grpc.ChannelCredentials | None:
    """The channel credentials of the config's TLS files (read now); None without a CA."""
    if not config.ca_file:
        return None
    return grpc.ssl_channel_credentials(
        root_certificates=Path(config.ca_file).read_bytes(),
        private_key=Path(config.key_file).read_bytes() if config.key_file else None,
        certificate_chain=Path(config.cert_file).read_bytes() if config.cert_file else None,
    )


def describe(err: BaseException) -> str:
    """A grpc error as `CODE: details`, anything else by its text (for log lines)."""
    if isinstance(err, grpc.aio.AioRpcError):
        return f"{err.code().name}: {err.details()}"
    return str(err) or type(err).__name__


def translate(
    err: grpc.aio.AioRpcError, operation: str, timeout_seconds: float | None = None
) -> StoreError:
    """etcd's error as the store's own type. etcd tells its errors apart by code and text (its
    `rpctypes`); this is the one place that reads them. Anything not recognised means etcd could
    not do it now: StoreUnavailableError. A deadline says what it means for the caller: a caller
    sees UNAVAILABLE with a hint, never a bare DEADLINE_EXCEEDED."""
    message = f"etcd {operation} failed: {describe(err)}"
    details = err.details() or ""
    if err.code() == grpc.StatusCode.NOT_FOUND and "lease not found" in details:
        return LeaseNotFoundError(message)
    if err.code() == grpc.StatusCode.OUT_OF_RANGE and "compacted" in details:
        return StoreCompactedError(message)
    if err.code() in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED) or any(
        text in details for text in (*_AUTH_ERRORS, "permission denied")
    ):
        return StoreAccessError(message)
    if err.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
        within = f" within {timeout_seconds:g}s" if timeout_seconds else ""
        return StoreUnavailableError(
            f"etcd did not answer {operation}{within} (it may have lost its leader or quorum, or "
            "be overloaded); the outcome is unknown: retry, on another frontend if this one "
            "keeps failing"
        )
    return StoreUnavailableError(message)
