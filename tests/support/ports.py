"""Loopback ports for the servers that tests start.

Ports come from below the kernel's ephemeral range. A server that a test kills and restarts on the
same port (an etcd member, a frontend process) must find that port free again, but while it is
down, clients keep reconnecting to it, and every outgoing connection takes an ephemeral port as
its source: one of them can take the dead server's port (or even connect to itself on it, TCP's
simultaneous open), and the restart then fails with "address already in use".
"""

from __future__ import annotations

import contextlib
import random
import socket
from pathlib import Path

_handed_out: set[int] = set()
_LOWEST = 10_000


def _bindable(port: int) -> bool:
    with socket.socket() as sock, contextlib.suppress(OSError):
        sock.bind(("127.0.0.1", port))
        return True
    return False


def _ephemeral_start() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768


def free_port() -> int:
    """A loopback port P outside the ephemeral range such that P and P + 1 (an etcd member's peer
    port) are both free now and were not handed out before in this run."""
    highest = max(_LOWEST + 2, _ephemeral_start() - 2)
    for _ in range(10_000):
        port = random.randint(_LOWEST, highest)
        if {port, port + 1} & _handed_out or not (_bindable(port) and _bindable(port + 1)):
            continue
        _handed_out.update({port, port + 1})
        return port
    raise RuntimeError(f"no free pair of loopback ports between {_LOWEST} and {highest}")
