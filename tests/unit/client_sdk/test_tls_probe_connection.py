"""The TLS probe's own connection is closed, socket and all, before it answers: a socket left
to close later is an unclosed-resource warning in the caller's event loop (warnings are errors
in the tests), and a file descriptor held per failed call."""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

import pytest
import trustme

from client_sdk._tls_probe import _hangs_up


@pytest.mark.parametrize("answers", [True, False])
async def test_the_probe_closes_its_socket_before_it_answers(monkeypatch, answers):
    authority = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(server_context)
    client_context = ssl.create_default_context()
    authority.configure_trust(client_context)

    async def frontend(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readexactly(24)  # the HTTP/2 preface
        if answers:
            writer.write(b"\x00\x00\x00\x04\x00\x00\x00\x00\x00")  # an empty SETTINGS frame
            await writer.drain()
            await reader.read()  # until the probe hangs up
        writer.close()
        await writer.wait_closed()

    sockets: list[Any] = []
    open_connection = asyncio.open_connection

    async def recorded(*args: Any, **kwargs: Any) -> Any:
        reader, writer = await open_connection(*args, **kwargs)
        sockets.append(writer.get_extra_info("socket"))
        return reader, writer

    monkeypatch.setattr(asyncio, "open_connection", recorded)
    server = await asyncio.start_server(frontend, "127.0.0.1", 0, ssl=server_context)
    async with server:
        port = server.sockets[0].getsockname()[1]
        hung_up = await _hangs_up("127.0.0.1", port, client_context)
        assert hung_up is not answers
        assert [sock.fileno() for sock in sockets] == [-1]  # closed, not closing
