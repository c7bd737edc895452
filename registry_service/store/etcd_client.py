"""A thin asyncio client for etcd's v3 gRPC API, over the project's own generated stubs.

Why our own (docs/decisions.md): the PyPI clients either no longer import beside current protobuf,
lose events on watch resume, or open a stream per lease refresh. This one gives the registry what it
needs and no more:

- several endpoints: calls go to the current one; a failed stream or an unavailable read moves on
  to the next, so an isolated member is left behind;
- TLS/mTLS and username/password auth, re-authenticating when etcd says the token expired;
- `hasleader` metadata on every call, so a member without a leader fails fast instead of serving;
- `LeaseRenewer`: ONE LeaseKeepAlive stream carries every renewal of the process, reopened with
  backoff; renewals of one lease in flight together are merged;
- `watch()`: the watch half of list-at-R-then-watch-from-R+1: events grouped per revision, resumed
  from the last delivered revision + 1 after any stream error, progress requests as a staleness
  watchdog, and `StoreCompactedError` when the start revision is gone.

Timeouts use `asyncio.timeout()`, never `asyncio.wait_for()`: on Python 3.11 wait_for can swallow a
cancellation that arrives as its inner await completes, and a background loop would outlive
shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, cast

import grpc
import grpc.aio

from registry_service.errors import StoreCompactedError, StoreUnavailableError
from registry_service.store._etcdpb import rpc_pb2 as pb
from registry_service.store._etcdpb import rpc_pb2_grpc as pb_grpc

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
_ENDPOINT_DOWN_SECONDS = 1.0
_AUTH_ERRORS = ("invalid auth token", "user name is empty", "authentication failed")


def prefix_end(prefix: bytes) -> bytes:
    """The range_end that makes [prefix, range_end) exactly the keys starting with prefix."""
    end = bytearray(prefix)
    for i in range(len(end) - 1, -1, -1):
        if end[i] < 0xFF:
            end[i] += 1
            return bytes(end[: i + 1])
    return b"\0"


class Backoff:
    """Jittered exponential backoff with an injectable sleep (tests need no real waiting)."""

    def __init__(
        self,
        initial: float = 0.05,
        maximum: float = 2.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._initial, self._maximum, self._sleep = initial, maximum, sleep
        self._next = initial

    def reset(self) -> None:
        self._next = self._initial

    async def wait(self) -> None:
        delay = self._next * random.uniform(0.5, 1.0)
        self._next = min(self._next * 2, self._maximum)
        await self._sleep(delay)


@dataclass(frozen=True, slots=True)
class WatchBatch:
    """All events of one etcd revision under the watched prefix."""

    revision: int
    events: tuple[pb.Event, ...]


@dataclass(frozen=True, slots=True)
class WatchHeartbeat:
    """The watch is alive; etcd was at `revision` (it says nothing about events still in flight)."""

    revision: int


WatchItem = WatchBatch | WatchHeartbeat


@dataclass(frozen=True)
class EtcdConfig:
    endpoints: tuple[str, ...]
    username: str = ""
    password: str = ""
    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""
    request_timeout_seconds: float = 5.0
    watch_stale_seconds: float = 10.0


class EtcdClient:
    """Connections to an etcd cluster; one instance per process."""

    def __init__(
        self, config: EtcdConfig, observe: Callable[[str, float], None] | None = None
    ) -> None:
        """`observe(operation, seconds)` is called after every unary call (a metrics hook)."""
        if not config.endpoints:
            raise ValueError("at least one etcd endpoint is required")
        self._config = config
        self._credentials = self._load_credentials(config)
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._stubs: dict[tuple[object, str], object] = {}
        self._current = 0
        self._round_robin = 0
        self._down_until: dict[str, float] = {}
        self._token = ""
        self._auth_lock = asyncio.Lock()
        self._observe = observe
        self.watch_connected = False
        self.watch_connected_since = 0.0  # monotonic time the current watch stream came up
        self.watch_up = asyncio.Event()  # set once a watch stream has first come up
        self.renewer = LeaseRenewer(self)

    @staticmethod
    def _load_credentials(config: EtcdConfig) -> grpc.ChannelCredentials | None:
        if not config.ca_file:
            return None
        return grpc.ssl_channel_credentials(
            root_certificates=Path(config.ca_file).read_bytes(),
            private_key=Path(config.key_file).read_bytes() if config.key_file else None,
            certificate_chain=Path(config.cert_file).read_bytes() if config.cert_file else None,
        )

    # -- connections --------------------------------------------------------------------------

    @property
    def endpoint(self) -> str:
        """The endpoint streams (watch, lease keepalive) use until it fails."""
        return self._config.endpoints[self._current % len(self._config.endpoints)]

    def _channel(self, endpoint: str | None = None) -> grpc.aio.Channel:
        endpoint = endpoint or self.endpoint
        channel = self._channels.get(endpoint)
        if channel is None:
            if self._credentials is not None:
                channel = grpc.aio.secure_channel(endpoint, self._credentials, _CHANNEL_OPTIONS)
            else:
                channel = grpc.aio.insecure_channel(endpoint, _CHANNEL_OPTIONS)
            self._channels[endpoint] = channel
        return channel

    def _healthy(self, endpoint: str) -> bool:
        return self._down_until.get(endpoint, 0.0) <= time.monotonic()

    def _next_endpoint(self) -> str:
        """Round robin over the endpoints that have not failed in the last second."""
        endpoints = self._config.endpoints
        for _ in range(len(endpoints)):
            self._round_robin += 1
            endpoint = endpoints[self._round_robin % len(endpoints)]
            if self._healthy(endpoint):
                return endpoint
        return endpoints[self._round_robin % len(endpoints)]

    def _mark_down(self, endpoint: str) -> None:
        self._down_until[endpoint] = time.monotonic() + _ENDPOINT_DOWN_SECONDS

    def rotate(self) -> None:
        """Moves streams to the next endpoint (the current one just failed them)."""
        if len(self._config.endpoints) > 1:
            self._mark_down(self.endpoint)
            for _ in range(len(self._config.endpoints)):
                self._current += 1
                if self._healthy(self.endpoint):
                    break
            log.info("etcd: streams move to endpoint %s", self.endpoint)

    def kv(self, endpoint: str | None = None) -> pb_grpc.KVStub:
        return self._stub(pb_grpc.KVStub, endpoint)

    def lease(self, endpoint: str | None = None) -> pb_grpc.LeaseStub:
        return self._stub(pb_grpc.LeaseStub, endpoint)

    def _stub(self, kind: Callable[[grpc.aio.Channel], _Stub], endpoint: str | None) -> _Stub:
        """One stub of each kind per endpoint: building one costs as much as a small call."""
        endpoint = endpoint or self.endpoint
        stub = self._stubs.get((kind, endpoint))
        if stub is None:
            stub = self._stubs[(kind, endpoint)] = kind(self._channel(endpoint))
        return cast(_Stub, stub)

    async def metadata(self) -> list[tuple[str, str]]:
        metadata = [("hasleader", "true")]
        if self._config.username:
            if not self._token:
                await self._authenticate()
            metadata.append(("token", self._token))
        return metadata

    async def _authenticate(self) -> None:
        async with self._auth_lock:
            if self._token:
                return
            stub = pb_grpc.AuthStub(self._channel())
            try:
                response = await stub.Authenticate(
                    pb.AuthenticateRequest(
                        name=self._config.username, password=self._config.password
                    ),
                    timeout=self._config.request_timeout_seconds,
                )
            except grpc.aio.AioRpcError as err:
                raise translate(err, "authenticate") from err
            self._token = response.token

    def is_auth_error(self, err: grpc.aio.AioRpcError) -> bool:
        return bool(self._config.username) and (
            err.code() == grpc.StatusCode.UNAUTHENTICATED
            or any(text in (err.details() or "") for text in _AUTH_ERRORS)
        )

    async def call(
        self,
        operation: str,
        invoke: Callable[[str, list[tuple[str, str]], float], Awaitable[T]],
        *,
        idempotent: bool,
    ) -> T:
        """Runs one unary call on the next endpoint (round robin), with auth.

        Reads (idempotent) are retried on each other endpoint when one is unavailable. Writes are
        not retried: their outcome is unknown, and the caller (a compare-guarded transaction
        or a retried Register with its idempotency key) is the one that can tell.
        """
        attempts = len(self._config.endpoints) if idempotent else 1
        reauthenticated = False
        attempt = 0
        while True:
            endpoint = self._next_endpoint()
            metadata = await self.metadata()
            started = time.perf_counter()
            try:
                return await invoke(endpoint, metadata, self._config.request_timeout_seconds)
            except grpc.aio.AioRpcError as err:
                if self.is_auth_error(err) and not reauthenticated:
                    self._token, reauthenticated = "", True
                    continue
                if err.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                    self._mark_down(endpoint)
                    attempt += 1
                    if attempt < attempts:
                        continue
                raise translate(err, operation) from err
            finally:
                if self._observe is not None:
                    self._observe(operation, time.perf_counter() - started)

    async def close(self) -> None:
        await self.renewer.close()
        for channel in self._channels.values():
            await channel.close()
        self._channels.clear()
        self._stubs.clear()

    # -- KV -----------------------------------------------------------------------------------

    async def range(self, request: pb.RangeRequest) -> pb.RangeResponse:
        return await self.call(
            "range",
            lambda ep, md, timeout: self.kv(ep).Range(request, metadata=md, timeout=timeout),
            idempotent=True,
        )

    async def range_prefix(
        self, prefix: bytes, *, revision: int = 0, page_size: int = 5_000
    ) -> tuple[int, list[pb.KeyValue]]:
        """Every key under prefix at one revision (the current one when 0), read in pages."""
        kvs: list[pb.KeyValue] = []
        start, end = prefix, prefix_end(prefix)
        while True:
            response = await self.range(
                pb.RangeRequest(key=start, range_end=end, revision=revision, limit=page_size)
            )
            revision = revision or response.header.revision
            kvs.extend(response.kvs)
            if not response.more or not response.kvs:
                return revision, kvs
            start = response.kvs[-1].key + b"\0"

    async def txn(self, request: pb.TxnRequest, *, read_only: bool = False) -> pb.TxnResponse:
        """A transaction; read_only ones (no puts or deletes) are retried like reads."""
        return await self.call(
            "txn",
            lambda ep, md, timeout: self.kv(ep).Txn(request, metadata=md, timeout=timeout),
            idempotent=read_only,
        )

    async def put(self, key: bytes, value: bytes, lease: int = 0) -> pb.PutResponse:
        request = pb.PutRequest(key=key, value=value, lease=lease)
        return await self.call(
            "put",
            lambda ep, md, timeout: self.kv(ep).Put(request, metadata=md, timeout=timeout),
            idempotent=False,
        )

    async def current_revision(self, key: bytes) -> int:
        """etcd's current revision, by a linearizable read (through the leader's ReadIndex).

        It reads `key` (count only): a key the caller may read, since etcd users are often
        granted one prefix only.
        """
        response = await self.range(pb.RangeRequest(key=key, count_only=True))
        return int(response.header.revision)

    async def compact(self, revision: int) -> None:
        request = pb.CompactionRequest(revision=revision, physical=True)
        await self.call(
            "compact",
            lambda ep, md, timeout: self.kv(ep).Compact(request, metadata=md, timeout=timeout),
            idempotent=False,
        )

    # -- leases -------------------------------------------------------------------------------

    async def lease_grant(self, ttl_seconds: int) -> int:
        request = pb.LeaseGrantRequest(TTL=ttl_seconds)
        response = await self.call(
            "lease_grant",
            lambda ep, md, timeout: self.lease(ep).LeaseGrant(
                request, metadata=md, timeout=timeout
            ),
            idempotent=False,
        )
        if response.error:
            raise StoreUnavailableError(f"etcd refused a lease: {response.error}")
        return int(response.ID)

    async def lease_revoke(self, lease_id: int) -> None:
        """Revokes a lease, deleting its keys; a lease that is already gone is not an error."""
        request = pb.LeaseRevokeRequest(ID=lease_id)
        try:
            await self.call(
                "lease_revoke",
                lambda ep, md, timeout: self.lease(ep).LeaseRevoke(
                    request, metadata=md, timeout=timeout
                ),
                idempotent=True,
            )
        except StoreUnavailableError as err:
            if isinstance(err.__cause__, grpc.aio.AioRpcError) and (
                err.__cause__.code() == grpc.StatusCode.NOT_FOUND
            ):
                return
            raise

    async def lease_time_to_live(self, lease_id: int) -> int:
        """Remaining seconds of a lease; -1 when it does not exist."""
        request = pb.LeaseTimeToLiveRequest(ID=lease_id)
        response = await self.call(
            "lease_ttl",
            lambda ep, md, timeout: self.lease(ep).LeaseTimeToLive(
                request, metadata=md, timeout=timeout
            ),
            idempotent=True,
        )
        return int(response.TTL)

    # -- watch --------------------------------------------------------------------------------

    async def watch(self, prefix: bytes, start_revision: int) -> AsyncIterator[WatchItem]:
        """Yields every revision that changed a key under prefix, from start_revision on, in order.

        Each revision is yielded exactly once even across reconnects: after any stream error the
        watch is reopened (on the next endpoint) from the last yielded revision + 1. A heartbeat is
        yielded for every response without events (progress). A stream that says nothing for
        `watch_stale_seconds`, despite progress requests every third of that, is reopened.

        Raises:
            StoreCompactedError: the next revision to deliver has been compacted; re-list.
        """
        next_revision = start_revision
        backoff = Backoff()
        stale = self._config.watch_stale_seconds
        while True:
            call = pb_grpc.WatchStub(self._channel()).Watch(metadata=await self.metadata())
            pinger: asyncio.Task[None] | None = None
            try:
                await call.write(
                    pb.WatchRequest(
                        create_request=pb.WatchCreateRequest(
                            key=prefix,
                            range_end=prefix_end(prefix),
                            start_revision=next_revision,
                            progress_notify=True,
                        )
                    )
                )
                pinger = asyncio.create_task(self._request_progress(call, stale / 3))
                while True:
                    async with asyncio.timeout(stale):
                        response = await call.read()
                    if response is grpc.aio.EOF:
                        raise StoreUnavailableError("etcd closed the watch stream")
                    backoff.reset()
                    if not self.watch_connected:
                        self.watch_connected_since = time.monotonic()
                        self.watch_up.set()
                    self.watch_connected = True
                    if response.compact_revision:
                        raise StoreCompactedError(int(response.compact_revision))
                    if response.canceled:
                        raise StoreUnavailableError(
                            f"etcd canceled the watch: {response.cancel_reason}"
                        )
                    if not response.events:
                        if not response.created:
                            yield WatchHeartbeat(int(response.header.revision))
                        continue
                    for batch in _group_by_revision(response.events):
                        yield batch
                        next_revision = batch.revision + 1
            except (grpc.aio.AioRpcError, StoreUnavailableError, TimeoutError) as err:
                if isinstance(err, grpc.aio.AioRpcError) and self.is_auth_error(err):
                    self._token = ""
                self.watch_connected = False
                log.warning(
                    "etcd watch on %s interrupted (%s); resuming at %d",
                    self.endpoint,
                    _describe(err),
                    next_revision,
                )
                self.rotate()
            finally:
                if pinger is not None:
                    pinger.cancel()
                call.cancel()
            await backoff.wait()

    @staticmethod
    async def _request_progress(call: Any, interval: float) -> None:
        with contextlib.suppress(grpc.aio.AioRpcError, asyncio.InvalidStateError):
            while True:
                await asyncio.sleep(interval)
                await call.write(pb.WatchRequest(progress_request=pb.WatchProgressRequest()))


def _group_by_revision(events: Sequence[pb.Event]) -> list[WatchBatch]:
    batches: list[WatchBatch] = []
    current: list[pb.Event] = []
    revision = 0
    for event in events:
        if current and event.kv.mod_revision != revision:
            batches.append(WatchBatch(revision, tuple(current)))
            current = []
        revision = event.kv.mod_revision
        current.append(event)
    if current:
        batches.append(WatchBatch(revision, tuple(current)))
    return batches


def _describe(err: BaseException) -> str:
    if isinstance(err, grpc.aio.AioRpcError):
        return f"{err.code().name}: {err.details()}"
    return str(err) or type(err).__name__


def translate(err: grpc.aio.AioRpcError, operation: str) -> StoreUnavailableError:
    """Every failure to talk to etcd is StoreUnavailableError; the cause stays attached."""
    return StoreUnavailableError(f"etcd {operation} failed: {_describe(err)}")


class LeaseRenewer:
    """Renews leases over ONE LeaseKeepAlive stream shared by the whole process.

    `renew()` sends a keepalive and returns the TTL etcd granted (0: the lease is gone). Renewals of
    the same lease that overlap share one request. When the stream breaks it is reopened with
    backoff on the next endpoint and every renewal still waiting is sent again. `keep_alive()` keeps
    a lease of the frontend's own (the evictor's election) alive at TTL/3 until it is lost.
    """

    def __init__(self, client: EtcdClient) -> None:
        self._client = client
        self._waiting: dict[int, asyncio.Future[int]] = {}
        self._outbox: asyncio.Queue[int] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()
        self._reconnects = asyncio.Event()
        self.streams_opened = 0

    async def renew(self, lease_id: int) -> int:
        future = self._waiting.get(lease_id)
        if future is None:
            future = asyncio.get_running_loop().create_future()
            self._waiting[lease_id] = future
            self._outbox.put_nowait(lease_id)
            self._ensure_running()
        timeout = self._client._config.request_timeout_seconds
        try:
            async with asyncio.timeout(timeout):
                return await asyncio.shield(future)
        except TimeoutError:
            if self._waiting.get(lease_id) is future:
                del self._waiting[lease_id]
            raise StoreUnavailableError("etcd did not answer a lease renewal in time") from None

    def _ensure_running(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="etcd-lease-keepalive")

    async def _run(self) -> None:
        backoff = Backoff()
        while True:
            call = self._client.lease().LeaseKeepAlive(metadata=await self._client.metadata())
            self.streams_opened += 1
            while not self._outbox.empty():
                self._outbox.get_nowait()
            for lease_id in self._waiting:
                self._outbox.put_nowait(lease_id)
            writer = asyncio.create_task(self._write(call))
            try:
                while True:
                    response = await call.read()
                    if response is grpc.aio.EOF:
                        raise StoreUnavailableError("etcd closed the lease keepalive stream")
                    if not self._connected.is_set():
                        self._connected.set()
                        self._reconnects.set()
                        self._reconnects = asyncio.Event()
                    backoff.reset()
                    future = self._waiting.pop(response.ID, None)
                    if future is not None and not future.done():
                        future.set_result(max(int(response.TTL), 0))
            except (grpc.aio.AioRpcError, StoreUnavailableError) as err:
                if isinstance(err, grpc.aio.AioRpcError) and self._client.is_auth_error(err):
                    self._client._token = ""
                log.warning("etcd lease keepalive stream interrupted: %s", _describe(err))
                self._connected.clear()
                self._client.rotate()
            finally:
                writer.cancel()
                call.cancel()
            await backoff.wait()

    async def _write(self, call: Any) -> None:
        with contextlib.suppress(grpc.aio.AioRpcError, asyncio.InvalidStateError):
            while True:
                lease_id = await self._outbox.get()
                await call.write(pb.LeaseKeepAliveRequest(ID=lease_id))

    async def keep_alive(self, lease_id: int, ttl_seconds: int) -> None:
        """Renews lease_id at TTL/3 (and at once after a reconnect); returns when it is lost.

        Lost means etcd says the lease is gone, or no renewal succeeded for a whole TTL.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + ttl_seconds
        while loop.time() < deadline:
            try:
                if await self.renew(lease_id) <= 0:
                    return
                deadline = loop.time() + ttl_seconds
                reconnected = self._reconnects
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(ttl_seconds / 3):
                        await reconnected.wait()
            except StoreUnavailableError:
                await asyncio.sleep(min(0.5, ttl_seconds / 6))

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
