"""Ports: a probe that sees any listener, and the claims by which workers share only their own
supervisor's port (issue 11, problem 2; decision D42)."""

from __future__ import annotations

import errno
import os
import socket

import pytest

from registry_service.port_claim import PortClaim, bind_error, claim_holder, claimed_by


def _listener(*, reuse_port: bool) -> socket.socket:
    sock = socket.socket()
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    return sock


@pytest.mark.parametrize("reuse_port", [False, True])
def test_the_probe_finds_any_listener_even_one_that_lets_others_share(reuse_port):
    with _listener(reuse_port=reuse_port) as sock:
        port = sock.getsockname()[1]
        error = bind_error("127.0.0.1", port)
        assert error is not None and error.errno == errno.EADDRINUSE
    assert bind_error("127.0.0.1", port) is None  # free again once it closed


def test_port_zero_is_always_free():
    # A malformed address never gets here: listeners.py refuses it (test_listeners.py).
    assert bind_error("127.0.0.1", 0) is None


async def test_a_port_is_claimed_once_and_the_claim_names_its_holder():
    with _listener(reuse_port=False) as sock:
        port = sock.getsockname()[1]  # a number nobody claims
    first, second = PortClaim(), PortClaim()
    try:
        assert await first.claim(port) is None
        assert claim_holder(port) == os.getpid()
        assert claimed_by(port, os.getpid()) and not claimed_by(port, os.getppid())
        assert await second.claim(port) == os.getpid()  # held: refused, naming the holder
    finally:
        first.release()
        second.release()
    assert claim_holder(port) is None and not claimed_by(port, os.getpid())
