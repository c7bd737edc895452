"""Refusing a port that another process serves, while workers still share their supervisor's.

`SO_REUSEPORT` lets any process of the same user join a port, and the kernel then spreads
connections over all of them: a second `serve` on the same port used to start without a word and
take half the connections, even for another cluster (issue 11, problem 2). So (decision D42):

- A lone frontend binds its ports without `SO_REUSEPORT`: the kernel itself refuses a port that
  anybody listens on, and refuses anybody later. Race-free.
- A supervisor, whose workers must share a port with `SO_REUSEPORT`, first **probes** the port (a
  bind without `SO_REUSEPORT` fails when any socket listens there, ours or another program's),
  then **claims** it: it listens on the abstract Unix socket `@node-registry/tcp-port/<port>`
  (Linux; one per network namespace, gone when the process dies, no file to clean up). A second
  supervisor, of any cluster, that probed in the same moment finds the name taken and refuses.
- A worker sets `SO_REUSEPORT` only on a port whose claim is held by its own parent (asked with
  `SO_PEERCRED`), so a worker started by hand, or by a supervisor that lost its claim, cannot join.

A claim is per port number, whatever the address: supervisors on 127.0.0.1:P and 10.0.0.1:P
refuse each other (a wildcard and a specific address on one port overlap; being strict is simpler
than telling which pairs do).

What this does not stop: a program other than node-registry that binds the port with
`SO_REUSEPORT` (a gRPC server with default options does) in the moment between the probe and the
workers' binds, or later; the kernel cannot tell "our workers" from "any process of this user".
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import socket
import struct
import sys

_CLAIMS = sys.platform.startswith("linux")  # abstract Unix sockets and SO_PEERCRED are Linux's


def bind_error(host: str, port: int) -> OSError | None:
    """Why binding host:port without SO_REUSEPORT fails now (None: it would work). Like a server,
    the probe sets SO_REUSEADDR, so connections of a server gone (TIME_WAIT) do not count; any
    listening socket does. Port 0 always works; `host` "" is every interface."""
    if port == 0:
        return None
    try:
        candidates = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except socket.gaierror as err:
        return OSError(errno.EADDRNOTAVAIL, f"{host} does not resolve ({err.strerror})")
    errors = []
    for family, kind, protocol, _, sockaddr in candidates:
        with socket.socket(family, kind, protocol) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(sockaddr)
            except OSError as err:
                if err.errno == errno.EADDRINUSE:
                    return err
                errors.append(err)
    # A name may resolve to an address family this host lacks (::1 without IPv6): the server
    # binds what it can, so only "no address at all" is an error.
    return errors[0] if len(errors) == len(candidates) else None


def _claim_name(port: int) -> str:
    return f"\0node-registry/tcp-port/{port}"


def claim_holder(port: int) -> int | None:
    """The pid of the process that holds the claim on `port`, None when nobody does (or when
    claims are not supported here)."""
    if not _CLAIMS:
        return None
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        try:
            client.connect(_claim_name(port))
        except OSError:
            return None
        credentials = client.getsockopt(
            socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i")
        )
    pid, _, _ = struct.unpack("3i", credentials)
    return int(pid)


class PortClaim:
    """The claims of one supervisor on the ports its workers share, held until `release()`."""

    def __init__(self) -> None:
        self._servers: list[asyncio.Server] = []

    async def claim(self, port: int) -> int | None:
        """Claims `port`; returns None on success, else the pid of the process that holds it
        (0 when it cannot be told)."""
        if not _CLAIMS or port == 0:
            return None
        try:
            server = await asyncio.start_unix_server(_answer_and_close, path=_claim_name(port))
        except OSError as err:
            if err.errno != errno.EADDRINUSE:
                raise
            return claim_holder(port) or 0
        self._servers.append(server)
        return None

    def release(self) -> None:
        """Gives up every claim, so that another supervisor may claim the ports."""
        for server in self._servers:
            server.close()
        self._servers.clear()


def _answer_and_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A worker asking who holds a claim only needs the connection's credentials."""
    with contextlib.suppress(OSError):
        writer.close()


def claimed_by(port: int, pid: int) -> bool:
    """Whether `pid` holds the claim on `port` (always true where claims are not supported:
    then a worker trusts its supervisor's word)."""
    return not _CLAIMS or port == 0 or claim_holder(port) == pid
