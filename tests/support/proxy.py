"""An asyncio TCP proxy on loopback that tests can cut, blackhole, delay and restore.

- `sever()`: drops every connection and refuses new ones (a crashed peer, a closed port);
- `blackhole()`: keeps connections open but passes nothing either way until restored (a
  partition: the peers only find out through timeouts; what was sent arrives after it heals,
  as TCP's retransmissions would bring it);
- `delay(seconds)`: holds every chunk that long before passing it on (a slow link);
- `source_host`: the address upstream sees the proxied client come from (127.0.0.2, say), so
  that tests can stand for a distinct peer on one machine.
"""

from __future__ import annotations

import asyncio
import contextlib


class TcpProxy:
    def __init__(self, target_host: str, target_port: int, source_host: str = "") -> None:
        self._target = (target_host, target_port)
        self._source = (source_host, 0) if source_host else None
        self._server: asyncio.base_events.Server | None = None
        self._connections: set[asyncio.StreamWriter] = set()
        self._handlers: set[asyncio.Task[None]] = set()
        self.port = 0
        self.cut = False
        self._flowing = asyncio.Event()
        self._flowing.set()
        self.delay_seconds = 0.0

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handler = asyncio.current_task()
        if handler is not None:  # close() waits for it
            self._handlers.add(handler)
            handler.add_done_callback(self._handlers.discard)
        if self.cut:
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(
                *self._target, local_addr=self._source
            )
        except OSError:
            writer.close()
            return
        self._connections.update({writer, up_writer})

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, asyncio.IncompleteReadError):
                while data := await src.read(65536):
                    if self.cut:
                        break
                    await self._flowing.wait()  # held while blackholed
                    if self.cut:
                        break
                    if self.delay_seconds:
                        await asyncio.sleep(self.delay_seconds)
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self._connections.difference_update({writer, up_writer})

    def sever(self) -> None:
        """Drops every open connection and refuses new ones until restore()."""
        self.cut = True
        self._flowing.set()  # held pipes wake up and see the cut
        for writer in list(self._connections):
            writer.transport.abort()
        self._connections.clear()

    def blackhole(self) -> None:
        """Passes nothing from now on, in either direction, without closing anything."""
        self._flowing.clear()

    def delay(self, seconds: float) -> None:
        self.delay_seconds = seconds

    def restore(self) -> None:
        self.cut = False
        self.delay_seconds = 0.0
        self._flowing.set()

    async def close(self) -> None:
        self.sever()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        if self._handlers:  # their pipes end once their connections are aborted
            await asyncio.wait(self._handlers, timeout=5)
