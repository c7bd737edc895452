"""The TLS files toward the remote datacenters are read again when they change (docs/design.md
§10, §14): dc1 follows dc2 over mTLS; dc2 moves to a new CA, dc1's remote TLS files are replaced
with the new CA's, and dc1's follower reconnects with them at once (one log line) and goes on
following, where the old files would no longer be admitted."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import grpc
import grpc.aio
import pytest
import trustme
from noderegistry.v1 import registry_pb2 as pb
from noderegistry.v1 import registry_pb2_grpc

from registry_service.app import Frontend
from tests.support.api import node
from tests.support.certs import SecretVolume, leaf_files, serial_of, served_serial
from tests.support.http_api import api_url, get
from tests.support.ports import free_port
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration

RELOADS = "registry_service.security.credential_files"


def client_files(authority: trustme.CA, name: str) -> dict[str, bytes]:
    """A client's files toward servers of `authority`: its certificate and key, and the CA."""
    return {**leaf_files(authority.issue_cert(name)), "ca.crt": authority.cert_pem.bytes()}


async def register_in(frontend: Frontend, authority: trustme.CA, node_id: str) -> None:
    """Registers a node of dc2 over mTLS with a client certificate of `authority`."""
    client = authority.issue_cert("fleet")
    credentials = grpc.ssl_channel_credentials(
        authority.cert_pem.bytes(),
        client.private_key_pem.bytes(),
        client.cert_chain_pems[0].bytes(),
    )
    async with grpc.aio.secure_channel(frontend.address, credentials) as channel:
        await registry_pb2_grpc.RegistryStub(channel).Register(
            pb.RegisterRequest(node=node(node_id, "data", "dc2"), ttl_seconds=30)
        )


async def followed_ids(frontend: Frontend) -> list[str]:
    """dc2's nodes as dc1's HTTP API lists them, when fresh (not marked stale)."""
    body = (await get(f"{api_url(frontend)}/v1/nodes?datacenter=dc2")).body
    (dc2,) = [dc for dc in body["datacenters"] if dc["datacenter"] == "dc2"] or [None]
    if dc2 is None or dc2["stale"]:
        return []
    return sorted(n["id"] for n in dc2["nodes"])


async def test_the_followers_reconnect_with_new_tls_files(
    tmp_path: Path, etcd, own_etcd, start_frontend, caplog
):
    caplog.set_level(logging.INFO, logger=RELOADS)
    old_ca, new_ca = trustme.CA(), trustme.CA()
    dc2_port = free_port()
    dc2_tls = SecretVolume(tmp_path / "dc2-tls")  # dc2's ports: mTLS, client CA = its CA
    dc2_tls.write({**leaf_files(old_ca.issue_cert("127.0.0.1")), "ca.crt": old_ca.cert_pem.bytes()})
    dc2: Frontend = await start_frontend(
        own_etcd.endpoint,
        listen=f"127.0.0.1:{dc2_port}",
        datacenter="dc2",
        tls_cert_file=dc2_tls.path("tls.crt"),
        tls_key_file=dc2_tls.path("tls.key"),
        tls_client_ca_file=dc2_tls.path("ca.crt"),
        credentials_reload_seconds=0.1,
    )
    remote_tls = SecretVolume(tmp_path / "remote-tls")  # dc1's files toward dc2
    remote_tls.write(client_files(old_ca, "dc1-follower"))
    dc1: Frontend = await start_frontend(
        etcd.endpoint,
        datacenter="dc1",
        remote_datacenters=f"dc2=127.0.0.1:{dc2_port}",
        remote_tls_ca_file=remote_tls.path("ca.crt"),
        remote_tls_cert_file=remote_tls.path("tls.crt"),
        remote_tls_key_file=remote_tls.path("tls.key"),
        remote_silence_seconds=3.0,
        credentials_reload_seconds=0.1,
    )
    await register_in(dc2, old_ca, "b1")
    await eventually(
        lambda: followed_ids(dc1), timeout=15, message="dc1 follows dc2 over the old CA's TLS"
    )
    (first_stream,) = {s.id for s in dc2.hub.subscriptions}  # dc1's follower

    # 1. dc2 moves to a new CA: it serves the new one's certificate and admits only its
    #    clients. The follower's open stream goes on over its connection.
    new_server = new_ca.issue_cert("127.0.0.1")
    dc2_tls.write({**leaf_files(new_server), "ca.crt": new_ca.cert_pem.bytes()})
    new_serial = serial_of(new_server.cert_chain_pems[0].bytes())

    async def dc2_rotated() -> bool:
        return await asyncio.to_thread(served_serial, dc2.port, http2=True) == new_serial

    await eventually(dc2_rotated, message="dc2 serves the new CA's certificate")
    assert {s.id for s in dc2.hub.subscriptions} == {first_stream}

    # 2. dc1's files toward dc2 are replaced with the new CA's: the follower reconnects with
    #    them (a new stream, which dc2 now admits only with the new CA's client certificate).
    caplog.clear()
    remote_tls.write(client_files(new_ca, "dc1-follower"))
    await eventually(
        lambda: {s.id for s in dc2.hub.subscriptions} - {first_stream},
        message="a new stream from dc1's follower",
    )
    await eventually(
        lambda: first_stream not in {s.id for s in dc2.hub.subscriptions},
        message="the old stream ended",
    )
    (line,) = [r.getMessage() for r in caplog.records if r.name == RELOADS]
    files = ", ".join(remote_tls.path(name) for name in ("ca.crt", "tls.crt", "tls.key"))
    assert line.startswith(
        f"reloaded the TLS towards the remote datacenters from {files} (remote_tls_ca_file, "
        "remote_tls_cert_file, remote_tls_key_file): the followers of dc2 reconnect with them; "
        "certificate valid until "
    )

    # 3. It goes on following: a change in dc2 reaches dc1, which lists dc2 fresh.
    await register_in(dc2, new_ca, "b2")

    async def both_followed() -> bool:
        return await followed_ids(dc1) == ["b1", "b2"]

    await eventually(both_followed, timeout=15, message="dc2's new node followed into dc1")
    sample = dc1.metrics.registry.get_sample_value
    labels = {"credentials": "remote_tls", "result": "applied"}
    assert sample("noderegistry_credential_reloads_total", labels) == 1
