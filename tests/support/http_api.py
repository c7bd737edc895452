"""Clients of the HTTP API for tests: JSON reads with their headers, and an event-stream reader
(Server-Sent Events over aiohttp, each event read with a timeout)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import ssl
from dataclasses import dataclass
from typing import Any

import aiohttp

# Settings under which every member that stops renewing beyond the first of its datacenter (and
# type) in ten minutes is held as SUSPECT: the self-preservation alarm, with suspects to show.
ONE_EVICTION_BUDGET = {
    "eviction_budget_ratio": 0.0,
    "eviction_budget_minimum": 1,
    "eviction_budget_type_minimum": 1,
    "eviction_window_seconds": 600.0,
    "evictor_reconcile_seconds": 0.3,
    "self_preservation_min_members": 0,  # these tests hold a handful of nodes
}


def api_url(frontend: Any) -> str:
    """The HTTP API of an in-process frontend (app.Frontend)."""
    return f"http://127.0.0.1:{frontend.api.port}"


def api_url_of(ready_line: str) -> str:
    """The HTTP API of a frontend or supervisor process, from its ready line."""
    match = re.search(r"api (https?://\S+)/v1/", ready_line)
    assert match, ready_line
    return match.group(1)


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: Any


async def get(
    url: str,
    token: str = "",
    headers: dict[str, str] | None = None,
    ssl_context: ssl.SSLContext | None = None,
) -> Answer:
    sent = dict(headers or {})
    if token:
        sent["Authorization"] = f"Bearer {token}"
    async with (
        aiohttp.ClientSession() as session,
        session.get(url, headers=sent, ssl=ssl_context or True, allow_redirects=False) as response,
    ):
        kind = response.headers.get("Content-Type", "")
        body = await response.json() if "json" in kind else await response.text()
        return Answer(response.status, dict(response.headers), body)


@dataclass(frozen=True)
class Event:
    name: str
    id: int | None
    """This frontend's etcd's revision in the event's id (its first part, with a vector)."""
    data: Any
    raw_id: str | None = None
    """The id as sent: what a client sends back as Last-Event-ID."""


class EventStream:
    """GET /v1/watch as a test reads it: events parsed in the background into a queue."""

    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None
        self._response: aiohttp.ClientResponse | None = None
        self._reader: asyncio.Task[None] | None = None
        self._events: asyncio.Queue[Event | None] = asyncio.Queue()
        self.status = 0
        self.error: Any = None

    @classmethod
    async def open(
        cls, url: str, token: str = "", last_event_id: int | str | None = None
    ) -> EventStream:
        stream = cls()
        headers = {"Accept": "text/event-stream"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if last_event_id is not None:
            headers["Last-Event-ID"] = str(last_event_id)
        stream._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None))
        response = await stream._session.get(url, headers=headers)
        stream._response = response
        stream.status = response.status
        if response.status != 200:
            stream.error = await response.json()
            await stream.close()
            return stream
        stream._reader = asyncio.create_task(stream._read(response))
        return stream

    async def _read(self, response: aiohttp.ClientResponse) -> None:
        fields: dict[str, str] = {}
        try:
            async for raw in response.content:
                line = raw.decode().rstrip("\n")
                if line:
                    name, _, value = line.partition(":")
                    fields[name] = value.removeprefix(" ")
                    continue
                if "data" in fields:
                    identifier = fields.get("id")
                    self._events.put_nowait(
                        Event(
                            fields.get("event", "message"),
                            int(identifier.split(",")[0]) if identifier else None,
                            json.loads(fields["data"]),
                            identifier,
                        )
                    )
                fields = {}
        except aiohttp.ClientError:
            pass
        finally:
            self._events.put_nowait(None)  # the stream ended

    async def next(self, timeout: float = 10.0) -> Event | None:
        """The next event; None once the stream has ended."""
        async with asyncio.timeout(timeout):
            return await self._events.get()

    async def next_change(self, timeout: float = 10.0) -> Event:
        """The next snapshot or delta (progress events skipped)."""
        async with asyncio.timeout(timeout):
            while True:
                event = await self._events.get()
                assert event is not None, "the stream ended"
                if event.name != "progress":
                    return event

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        if self._response is not None:
            self._response.close()
        if self._session is not None:
            await self._session.close()


def node_ids(body: dict[str, Any]) -> list[str]:
    """Every node of a list or snapshot as dc/type/id, in the answer's order."""
    return [
        f"{node['datacenter']}/{node['type']}/{node['id']}"
        for datacenter in body["datacenters"]
        for node in datacenter["nodes"]
    ]


def changes(event: Event) -> list[tuple[str, str]]:
    """A delta's events as (type, node id)."""
    return [(change["type"], change["node"]["id"]) for change in event.data["events"]]
