"""GET /v1/watch: WatchNodes as Server-Sent Events (docs/design.md §11).

One hub subscription per stream, exactly as a gRPC WatchNodes stream has: a snapshot, then one
delta per revision that changes the scope, then progress while idle (the heartbeat, every
`watch_progress_seconds`). Each event is

    event: snapshot | delta | progress
    id: <revision>
    data: <one line of JSON, a shape of web/shapes.py>

`Last-Event-ID` (the header a reconnecting EventSource sends, or `?last_event_id=`) is WatchNodes'
`resume_revision`: exactly the changes after it, or a snapshot flagged `resync` with the same
reasons (COMPACTED, UNKNOWN_REVISION, SLOW_CONSUMER, PUSH_RESUMED). A slow reader is a slow
subscriber: its backlog collapses into one resync, it never slows the others.

Refusals before the stream starts (a bad scope, a scope wider than the token's `watch`, a
malformed Last-Event-ID, the per-peer stream limit, a frontend whose event loop lags: 429 with
Retry-After, D72) are JSON errors with their status (web/edge.py). Once it has started, an error
ends it with one `event: error` carrying the same JSON error body: the frontend shutting down
(resume on another one), or a tokens file read again that no longer holds the stream's token
(UNAUTHENTICATED, "token revoked: ...") or no longer grants it the scope (PERMISSION_DENIED).
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from typing import Any

from aiohttp import web

from registry_service.domain import SnapshotMessage, WatchMessage, WatchResume
from registry_service.rpc.access import StreamCounter
from registry_service.rpc.status import status_of
from registry_service.security.open_streams import OpenStreams
from registry_service.web.api_config import NodeReads, ReadAdmission
from registry_service.web.auth import HttpAuth, checks_node_scope, request_caller
from registry_service.web.query import watch_query
from registry_service.web.shapes import error_json, watch_message_json

_RECONNECT_MILLISECONDS = 1000
_HEADERS = {
    "Content-Type": "text/event-stream; charset=utf-8",
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",  # a proxy in front must not hold events back
}


class EventPosition:
    """Where a stream stands, as its events' ids say it: this frontend's etcd's revision, and with
    datacenter revisions each followed datacenter's (`812,dc2=455`): exactly what a client sends
    back as Last-Event-ID to resume (WatchNodesRequest's resume_revision and resume_revisions)."""

    def __init__(self, resume: WatchResume) -> None:
        self.federated = resume.federated
        self.revision = resume.revision
        self.revisions = dict(resume.revisions)

    def after(self, message: WatchMessage) -> str:
        """The id of `message`'s event, having moved the position past it."""
        if message.datacenter:
            self.revisions[message.datacenter] = message.revision
        else:
            self.revision = message.revision
            if isinstance(message, SnapshotMessage):  # a whole list: every datacenter anew
                self.revisions = {
                    dc.datacenter: dc.complete_revision
                    for dc in message.nodes.datacenters
                    if dc.remote and dc.complete_revision
                }
        if not self.federated:
            return str(self.revision)
        remotes = "".join(f",{dc}={revision}" for dc, revision in sorted(self.revisions.items()))
        return f"{self.revision}{remotes}"


def sse_event(name: str, event_id: str | None, data: Any) -> bytes:
    """One Server-Sent Event; the data is a single line of JSON."""
    lines = [f"event: {name}"]
    if event_id is not None:
        lines.append(f"id: {event_id}")
    lines.append(f"data: {json.dumps(data, separators=(',', ':'), sort_keys=True)}")
    return ("\n".join(lines) + "\n\n").encode()


def grpc_style_peer(request: web.Request) -> str:
    """The client's address as gRPC writes a peer (`ipv4:10.0.0.5:41000`), so that the push
    switch's gray-listed networks hold HTTP watchers as they hold gRPC ones."""
    transport = request.transport
    peer = transport.get_extra_info("peername") if transport is not None else None
    if not peer:
        return ""
    host, port = str(peer[0]), int(peer[1])
    return f"ipv6:[{host}]:{port}" if ":" in host else f"ipv4:{host}:{port}"


class WatchStreams:
    """GET /v1/watch: WatchNodes as Server-Sent Events."""

    def __init__(
        self,
        reads: NodeReads,
        auth: HttpAuth,
        streams: StreamCounter,
        admission: ReadAdmission | None = None,
    ) -> None:
        self._reads = reads
        self._auth = auth
        self._streams = streams
        self.open = 0
        """Streams open now (the metric noderegistry_http_event_streams)."""
        self._admission = admission
        self._following = OpenStreams(auth.tokens, "/v1/watch")  # a revoked token ends its streams

    @checks_node_scope
    async def watch(self, request: web.Request) -> web.StreamResponse:
        """Streams the scope's snapshot and changes until the client goes; an error is one event."""
        scope, resume = watch_query(request.query, request.headers)
        caller = request_caller(request)
        caller.require_scope("watch", scope)
        if self._admission is not None:
            self._admission.read("WatchNodes")
        with self._streams.hold(self._auth.identify(request)), self._counted():
            subscription = await self._reads.watch(scope, resume, peer=grpc_style_peer(request))
            position = EventPosition(resume)
            response = web.StreamResponse(headers=_HEADERS)
            revoked = self._following.following(
                caller,
                [("authorization", request.headers.get("Authorization", ""))],
                lambda again: again.require_scope("watch", scope),
                subscription.fail,
            )
            try:
                with revoked:
                    await response.prepare(request)
                    await response.write(f"retry: {_RECONNECT_MILLISECONDS}\n\n".encode())
                    async for message in subscription:
                        name, data = watch_message_json(message)
                        await response.write(sse_event(name, position.after(message), data))
                        subscription.written(message, time.monotonic())
            except ConnectionError:
                pass  # the client went away: nothing to tell it
            except Exception as err:  # one error event, then the stream ends
                code, text = status_of(err)
                with contextlib.suppress(ConnectionError):
                    await response.write(sse_event("error", None, error_json(code, text)))
            finally:
                subscription.close()
            return response

    @contextlib.contextmanager
    def _counted(self) -> Iterator[None]:
        self.open += 1
        try:
            yield
        finally:
            self.open -= 1
