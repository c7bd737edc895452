"""The cluster-wide admin views over TLS, with a certificate that names the Service and not each
frontend's address (a certificate from a Secret, in Kubernetes): frontends ask each other at
their announced addresses, so without `peer_tls_server_name` the others show as unreachable; with
it, every frontend answers."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
import trustme

from registry_service.app import Frontend
from tests.support.http_api import get
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration

SERVICE_NAME = "registry.registry.svc"


async def test_peers_are_checked_against_the_configured_server_name(tmp_path: Path, start_frontend):
    authority = trustme.CA()
    leaf = authority.issue_cert(SERVICE_NAME)  # no IP address in it
    authority.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    leaf.cert_chain_pems[0].write_to_path(str(tmp_path / "tls.crt"))
    leaf.private_key_pem.write_to_path(str(tmp_path / "tls.key"))
    tls = {
        "tls_cert_file": str(tmp_path / "tls.crt"),
        "tls_key_file": str(tmp_path / "tls.key"),
        "peer_ca_file": str(tmp_path / "ca.pem"),
    }
    unnamed: Frontend = await start_frontend(**tls)
    named: Frontend = await start_frontend(**tls, peer_tls_server_name=SERVICE_NAME)
    await eventually(
        lambda: len(named.operator_state.frontends) == 2 == len(unnamed.operator_state.frontends),
        message="both frontends announced",
    )
    client = ssl.create_default_context(cafile=str(tmp_path / "ca.pem"))
    client.check_hostname = False  # this test's own client; the frontends' checks are the point

    async def convergence(frontend: Frontend) -> dict:
        answer = await get(
            f"https://127.0.0.1:{frontend.admin.port}/admin/convergence", ssl_context=client
        )
        assert answer.status == 200, answer.body
        return answer.body

    without = await convergence(unnamed)
    assert {peer["frontend"] for peer in without["unreachable"]} == {
        unnamed.frontend_id,
        named.frontend_id,
    }
    assert all("certificate" in peer["error"] for peer in without["unreachable"])
    with_name = await convergence(named)
    assert with_name["unreachable"] == []
    assert set(with_name["frontends"]) == {unnamed.frontend_id, named.frontend_id}
