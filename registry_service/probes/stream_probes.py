"""The probes over a plain TCP stream: an HTTP GET (a 2xx status passes) and a TCP connect.

One connection per probe, closed at once, as Kubernetes probes do: nothing stays open between
probes. The HTTP probe sends one HTTP/1.1 request with `Connection: close` and reads the status
line only; no body is read, no redirect followed (a 3xx fails, as it would in Consul).
"""

from __future__ import annotations

import asyncio
import contextlib

from registry_service.core.check_state import ProbeResult


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(OSError, ConnectionError):
        await writer.wait_closed()


def _failed(err: OSError) -> str:
    return f"connection failed: {(err.strerror or str(err) or type(err).__name__).lower()}"


async def tcp_probe(host: str, port: int, timeout_seconds: float) -> ProbeResult:
    """Passes when a TCP connection to host:port opens within the timeout."""
    try:
        async with asyncio.timeout(timeout_seconds):
            _, writer = await asyncio.open_connection(host, port)
            await _close(writer)
    except TimeoutError:
        return ProbeResult(False, f"timed out after {timeout_seconds:g}s")
    except OSError as err:
        return ProbeResult(False, _failed(err))
    return ProbeResult(True, "connected")


async def http_probe(
    host: str, port: int, authority: str, path: str, timeout_seconds: float, user_agent: str
) -> ProbeResult:
    """Passes when `GET path` answers a 2xx status within the timeout."""
    request = (
        f"GET {path} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: {user_agent}\r\n"
        "Accept: */*\r\nConnection: close\r\n\r\n"
    ).encode()
    try:
        async with asyncio.timeout(timeout_seconds):
            reader, writer = await asyncio.open_connection(host, port)
            try:
                writer.write(request)
                await writer.drain()
                line = await reader.readline()
            finally:
                await _close(writer)
    except TimeoutError:
        return ProbeResult(False, f"timed out after {timeout_seconds:g}s")
    except OSError as err:
        return ProbeResult(False, _failed(err))
    parts = line.decode("latin-1").split(None, 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        return ProbeResult(False, f"not an HTTP answer: {line[:80]!r}")
    status = int(parts[1])
    reason = parts[2].strip() if len(parts) > 2 else ""
    return ProbeResult(200 <= status < 300, f"HTTP {status} {reason}".strip())
