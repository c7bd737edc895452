from __future__ import annotations

import contextlib
import socket

_handed_out: set[int] = set()


def _bindable(port: int) -> bool:
    with socket.socket() as sock, contextlib.suppress(OSError):
        sock.bind(("127.0.0.1", port))
        return True
    return False


def free_port() -> int:
    """A loopback port P such that P and P + 1 (an etcd member's peer port) are both free now
    and were not handed out before in this run."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if {port, port + 1} & _handed_out or not _bindable(port + 1):
            continue
        _handed_out.update({port, port + 1})
        return port
