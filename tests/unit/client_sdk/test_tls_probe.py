"""Which failures the SDK probes for a TLS cause, and where it would knock (pure parts of
client_sdk/_tls_probe.py; the probe itself is tested against real frontends in
tests/integration/test_tls_errors.py)."""

from __future__ import annotations

import pytest

from client_sdk._tls_probe import _host_port, looks_like_tls


@pytest.mark.parametrize(
    ("details", "tls"),
    [
        (
            "failed to connect to all addresses; last error: UNAVAILABLE: ipv4:1.2.3.4:5: "
            "Socket closed",
            True,
        ),
        ("... Tls handshake failed (TSI_PROTOCOL_FAILURE): SSL_ERROR_SSL: ...", True),
        ("... Failed to create security handshaker.", True),
        ("... Failed to connect to remote host: Connection refused", False),
        ("DNS resolution failed for nowhere.invalid:50051", False),
        ("Deadline Exceeded", False),
    ],
)
def test_only_failures_that_can_hide_tls_are_probed(details, tls):
    assert looks_like_tls(details) is tls


@pytest.mark.parametrize(
    ("target", "address"),
    [
        ("127.0.0.1:50051", ("127.0.0.1", 50051)),
        ("reg-1.example:443", ("reg-1.example", 443)),
        ("[::1]:50051", ("::1", 50051)),
        ("dns:///registry.internal:50051", ("registry.internal", 50051)),
        ("ipv4:10.0.0.5:50051", ("10.0.0.5", 50051)),
        ("unix:/run/registry.sock", None),
        ("registry.internal", None),
    ],
)
def test_the_probe_knocks_where_grpc_did(target, address):
    assert _host_port(target) == address
