"""A fleet of subscriber streams spread over client processes, and the time a change takes to reach
the last of them (the processes print when all their streams have it: bench/subscribers.py)."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import subprocess
import time
from collections.abc import Awaitable, Callable

from bench.system import Processes


class Fleet:
    """Subscriber streams of one `kind` to `target`, `total` of them over `count` processes of
    `module` (bench/subscribers.py's protocol: `ready <reopened>`, then `seen <marker> <t>`)."""

    def __init__(
        self,
        processes: Processes,
        kind: str,
        target: str,
        total: int,
        count: int,
        module: str = "bench.subscribers",
    ):
        per = [total // count + (1 if i < total % count else 0) for i in range(count)]
        self.clients = [
            processes.start("-m", module, kind, target, str(n), stdin=True) for n in per if n
        ]
        self.seen: dict[str, list[float]] = {}
        self.reopened = 0  # stream opens the server shed (CANCELLED) and the client retried
        self._events: dict[str, asyncio.Event] = {}

    async def ready(self, timeout: float = 300) -> None:
        async with asyncio.timeout(timeout):
            for client in self.clients:
                assert client.stdout is not None
                line = await asyncio.to_thread(client.stdout.readline)
                if not line.startswith("ready"):
                    raise RuntimeError(f"subscriber process failed: {line!r}")
                self.reopened += int(line.split()[1])
        self._readers = [asyncio.create_task(self._read(c)) for c in self.clients]

    async def _read(self, client: subprocess.Popen[str]) -> None:
        assert client.stdout is not None
        while line := await asyncio.to_thread(client.stdout.readline):
            _, marker, at = line.split()
            self.seen.setdefault(marker, []).append(float(at))
            if len(self.seen[marker]) == len(self.clients):
                self._events.setdefault(marker, asyncio.Event()).set()

    async def last_receipt(self, marker: str, timeout: float = 30) -> float:
        event = self._events.setdefault(marker, asyncio.Event())
        async with asyncio.timeout(timeout):
            await event.wait()
        return max(self.seen[marker])

    def close(self) -> None:
        for client in self.clients:
            with contextlib.suppress(OSError):
                assert client.stdin is not None
                client.stdin.close()
            client.kill()
            client.wait()
        for reader in getattr(self, "_readers", []):
            reader.cancel()


async def fanout_latencies(
    fleet: Fleet, trigger: Callable[[str], Awaitable[None]], changes: int
) -> list[float]:
    """Seconds from each change's trigger to its last receipt, `changes` one after the other."""
    latencies = []
    for i in range(changes):
        marker = f"c{i}-{secrets.token_hex(3)}"
        started = time.monotonic()
        await trigger(marker)
        latencies.append(await fleet.last_receipt(marker) - started)
    return latencies
