"""The HTTP ports against abusive clients (issue 22, item 3; reliability H5): malformed revisions,
slow and oversized request heads, idle and too many connections, the 401 challenge, and a
Consul-style `wait=0`. The clients here are raw sockets where aiohttp's client would not send
what an attacker sends."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator

import pytest

from tests.support.api import node, register
from tests.support.http_api import EventStream, api_url, get
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration

_HEAD = "GET /v1/nodes HTTP/1.1\r\nHost: registry\r\n"


@pytest.mark.parametrize(
    "query",
    [
        "index=%C2%B2&wait=1ms",  # "²": str.isdigit() says yes, int() says no
        "index=%E2%91%A0&wait=1ms",  # "①"
        "index=" + "9" * 5000,  # more digits than int() converts
        "index=99999999999999999999&wait=1ms",  # beyond an int64
        "index=1&wait=%C2%B2s",
    ],
)
async def test_revisions_take_ascii_digits_only_else_400(start_frontend, query):
    frontend = await start_frontend()
    answer = await get(f"{api_url(frontend)}/v1/nodes?{query}")
    assert answer.status == 400, answer.body
    assert answer.body["error"]["code"] == "INVALID_ARGUMENT"
    assert len(answer.body["error"]["message"]) < 200  # 5,000 digits are not echoed back


@pytest.mark.parametrize("event_id", ["²", "1,dc2=①", "7" * 5000])
async def test_last_event_id_takes_ascii_digits_only_else_400(start_frontend, event_id):
    frontend = await start_frontend()
    for url, header in (
        (f"{api_url(frontend)}/v1/watch?datacenter_revisions=true", event_id),
        (f"{api_url(frontend)}/v1/watch?datacenter_revisions=true&last_event_id={event_id}", None),
    ):
        stream = await EventStream.open(url, last_event_id=header)
        try:
            assert stream.status == 400, stream.error
            assert stream.error["error"]["code"] == "INVALID_ARGUMENT"
        finally:
            await stream.close()


async def _connect(url: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    host, port = url.removeprefix("http://").split(":")
    return await asyncio.open_connection(host, int(port))


async def _answer(reader: asyncio.StreamReader, timeout: float = 10.0) -> tuple[int, dict, bytes]:
    """One answer read off a raw connection: status, headers, body (b"" when closed silently)."""
    async with asyncio.timeout(timeout):
        head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
    body = await reader.readexactly(int(headers.get("Content-Length", "0")))
    return int(lines[0].split()[1]), headers, body


async def _closed(reader: asyncio.StreamReader, timeout: float) -> bool:
    """Whether the server closes the connection within `timeout` (what it sent before is read)."""
    try:
        async with asyncio.timeout(timeout):
            while await reader.read(65536):
                pass
    except TimeoutError:
        return False
    except ConnectionError:
        pass
    return True


@contextlib.asynccontextmanager
async def _connections(url: str, count: int) -> AsyncIterator[list[tuple]]:
    opened = [await _connect(url) for _ in range(count)]
    try:
        yield opened
    finally:
        for _, writer in opened:
            writer.close()


async def test_slow_request_heads_are_answered_408_and_closed(start_frontend):
    """A slowloris: connections that trickle a head, or send nothing, are held no longer than
    http_header_timeout_seconds (before: 60 s and more, each a descriptor)."""
    frontend = await start_frontend(http_header_timeout_seconds=1.0)
    url = api_url(frontend)
    started = time.monotonic()
    async with _connections(url, 20) as opened:
        for _, writer in opened[:10]:
            writer.write(_HEAD[:5].encode())  # a part of the line, then nothing more
        statuses = await asyncio.gather(*(_answer(reader) for reader, _ in opened))
        print(f"H5: 20 slow heads answered 408 after {time.monotonic() - started:.2f} s")
        assert {status for status, _, _ in statuses} == {408}
        body = json.loads(statuses[0][2])
        assert body["error"]["code"] == "DEADLINE_EXCEEDED"
        assert "http_header_timeout_seconds" in body["error"]["message"]
        assert all([await _closed(reader, 5) for reader, _ in opened])
    # An honest client is served meanwhile and after.
    assert (await get(f"{url}/v1/nodes")).status == 200


async def test_an_idle_kept_alive_connection_is_closed_after_the_idle_timeout(start_frontend):
    frontend = await start_frontend(http_idle_timeout_seconds=1.0)
    reader, writer = await _connect(api_url(frontend))
    try:
        writer.write((_HEAD + "\r\n").encode())
        status, headers, _ = await _answer(reader)
        assert status == 200 and headers.get("Connection", "keep-alive").lower() != "close"
        assert await _closed(reader, 10)  # aiohttp's default: an hour
    finally:
        writer.close()


async def test_a_peer_holds_at_most_its_connections_and_the_next_is_429(start_frontend):
    frontend = await start_frontend(
        http_max_connections_per_peer=3, http_header_timeout_seconds=60.0
    )
    url = api_url(frontend)
    async with _connections(url, 3) as held:
        reader, writer = await _connect(url)
        status, headers, body = await _answer(reader)
        writer.close()
        assert status == 429 and headers["Content-Type"].startswith("application/json")
        error = json.loads(body)["error"]
        assert error["code"] == "RESOURCE_EXHAUSTED"
        assert "http_max_connections_per_peer" in error["message"]
        # One of the held connections asks and is answered: they are served, not stuck.
        held[0][1].write((_HEAD + "\r\n").encode())
        assert (await _answer(held[0][0]))[0] == 200
        held[1][1].close()
        await eventually(
            lambda: sum(frontend.api._runner.server.peers.values()) == 2,  # type: ignore[union-attr]
            message="the closed connection uncounted",
        )
        assert (await get(f"{url}/v1/nodes")).status == 200


def _big_head(headers: int, size: int, path: str = "/v1/nodes") -> bytes:
    fields = "".join(f"X-Filler-{i}: {'v' * size}\r\n" for i in range(headers))
    return f"GET {path} HTTP/1.1\r\nHost: registry\r\n{fields}\r\n".encode()


@pytest.mark.parametrize("chunk_bytes", [None, 4096], ids=["one write", "trickled"])
async def test_the_total_of_a_requests_headers_is_bounded_431(start_frontend, caplog, chunk_bytes):
    """100 headers of 8,000 bytes each were accepted (each under the line limit), and an event
    stream kept them as long as it ran. Now their total is bounded, whether the head arrives at
    once or in pieces, and the refusal is the JSON error and one log line."""
    frontend = await start_frontend()
    head = _big_head(100, 8000, "/v1/watch")
    reader, writer = await _connect(api_url(frontend))
    try:
        with caplog.at_level(logging.WARNING):
            if chunk_bytes is None:
                writer.write(head)
            else:
                for start in range(0, len(head), chunk_bytes):
                    writer.write(head[start : start + chunk_bytes])
                    with contextlib.suppress(ConnectionError):
                        await writer.drain()
                    if reader.at_eof() or len(reader._buffer):  # type: ignore[attr-defined]
                        break
            status, _, body = await _answer(reader)
        assert status == 431
        error = json.loads(body)["error"]
        assert error["code"] == "RESOURCE_EXHAUSTED"
        assert "http_max_header_bytes" in error["message"]
        assert await _closed(reader, 5)
    finally:
        writer.close()
    refusals = [r for r in caplog.records if "refused" in r.getMessage()]
    assert len(refusals) == 1 and refusals[0].levelno == logging.WARNING
    # The frontend's own records (grpc's poller may log a closed loop of an earlier test's).
    ours = [r for r in caplog.records if r.name.startswith("registry_service")]
    assert "vvvv" not in caplog.text and not any(r.exc_info for r in ours)


async def test_an_oversized_header_is_a_json_431_and_one_line_without_its_value(
    start_frontend, caplog
):
    """Before: a plain-text 400 and an ERROR traceback quoting the header (for Authorization, a
    prefix of the token)."""
    frontend = await start_frontend()
    secret = "s3cr3t" * 2000  # 12,000 bytes: over the 8 KiB of one header
    with caplog.at_level(logging.WARNING):
        answer = await get(f"{api_url(frontend)}/v1/nodes", token=secret)
    assert answer.status == 431
    assert answer.body["error"]["code"] == "RESOURCE_EXHAUSTED"
    assert "max_metadata_bytes" in answer.body["error"]["message"]
    assert "s3cr3t" not in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert len([r for r in caplog.records if "refused" in r.getMessage()]) == 1


async def test_a_401_carries_a_www_authenticate_challenge(tmp_path, start_frontend):
    tokens = tmp_path / "tokens"
    tokens.write_text("reader watch reader-2\n")
    frontend = await start_frontend(auth_tokens_file=str(tokens))
    url = f"{api_url(frontend)}/v1/nodes"
    missing = await get(url)
    assert missing.status == 401
    assert missing.headers["WWW-Authenticate"] == 'Bearer realm="node-registry"'
    wrong = await get(url, token="guessed")
    assert wrong.status == 401
    assert wrong.headers["WWW-Authenticate"] == (
        'Bearer realm="node-registry", error="invalid_token", error_description="unknown token"'
    )
    admin = f"http://127.0.0.1:{frontend.admin.port}/admin/nodes"
    assert "WWW-Authenticate" in (await get(admin)).headers
    assert (await get(url, token="reader-2")).status == 200


async def test_wait_0_is_the_default_wait_as_in_consul(start_frontend, connect):
    """A Consul-style loop that sends `wait=0` blocks until the scope changes (before: it was
    answered at once, so the loop polled as fast as it could)."""
    frontend = await start_frontend(http_max_wait_seconds=60.0)
    first = await get(f"{api_url(frontend)}/v1/nodes?type=data")
    index = first.body["index"]
    read = asyncio.create_task(get(f"{api_url(frontend)}/v1/nodes?type=data&index={index}&wait=0"))
    try:
        await eventually(lambda: frontend.api.waiting == 1, message="the read waits")
        added = await register(connect(frontend), node("d1", "data"))
        async with asyncio.timeout(20):
            answer = await read
        assert answer.status == 200 and answer.body["index"] == added.revision
    finally:
        read.cancel()
