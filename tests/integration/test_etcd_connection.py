"""How a frontend reaches etcd: auth, TLS, several endpoints, the loss of a member."""

from __future__ import annotations

import asyncio
import subprocess
import time
from pathlib import Path

import pytest
from noderegistry.v1 import registry_pb2 as pb

from registry_service.app import Frontend
from registry_service.errors import LeaseNotFoundError, StoreCompactedError, StoreUnavailableError
from registry_service.process.embedded_etcd import EtcdServer, EtcdTls, etcdctl_binary
from registry_service.startup import ServeError
from registry_service.store._etcdpb.rpc_pb2 import RangeRequest
from registry_service.store._etcdpb.rpc_pb2_grpc import KVStub
from registry_service.store.etcd_client import EtcdClient, EtcdConfig
from tests.chaos.conftest import wait_for_leader
from tests.support.api import WatchRecorder, node, node_ids, register, register_through_outage
from tests.support.certs import write_certificates
from tests.support.etcd_metrics import metric
from tests.support.ports import free_port
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration


def _etcdctl(server: EtcdServer, *args: str) -> None:
    subprocess.run(
        [etcdctl_binary(server.binary), f"--endpoints={server.client_url}", *args],
        check=True,
        capture_output=True,
        timeout=30,
    )


@pytest.fixture
def etcd_with_auth(tmp_path: Path):
    port = free_port()
    server = EtcdServer(
        data_dir=tmp_path / "auth",
        client_port=port,
        peer_port=port + 1,
        name="auth",
        extra_args=["--auth-token=simple", "--auth-token-ttl=1"],
    )
    server.start()
    server.wait_ready()
    _etcdctl(server, "user", "add", "root:rootpw", "--interactive=false")
    _etcdctl(server, "user", "add", "registry:s3cret", "--interactive=false")
    _etcdctl(server, "role", "add", "registry")
    _etcdctl(server, "role", "grant-permission", "registry", "readwrite", "/", "--prefix=true")
    _etcdctl(server, "user", "grant-role", "registry", "registry")
    _etcdctl(server, "auth", "enable")
    yield server
    server.stop()


async def test_frontend_uses_etcd_auth_and_reauthenticates_when_the_token_expires(
    etcd_with_auth, start_frontend, connect
):
    frontend = await start_frontend(
        etcd_with_auth.endpoint, etcd_username="registry", etcd_password="s3cret"
    )
    stub = connect(frontend)
    watcher = WatchRecorder(stub).start()
    # Keep working across several lifetimes of the 1 s auth token.
    started, count = time.monotonic(), 0
    while time.monotonic() - started < 3.5:
        await register(stub, node(f"n{count}"))
        count += 1
        await watcher.wait_for_node(f"n{count - 1}")
    assert len(await node_ids(stub)) == count
    assert not watcher.violations
    await watcher.close()


async def test_a_wrong_etcd_password_fails_start_with_a_clear_error(etcd_with_auth, settings_for):
    frontend = Frontend(
        settings_for(etcd_with_auth.endpoint, etcd_username="registry", etcd_password="wrong")
    )
    with pytest.raises(ServeError, match=r"authenticate failed.*set REGISTRY_ETCD_USERNAME and "):
        await frontend.start()
    await frontend.stop()


@pytest.fixture
def etcd_with_mtls(tmp_path: Path):
    _, files = write_certificates(tmp_path, ("127.0.0.1", "localhost"), "registry-frontend")
    port = free_port()
    server = EtcdServer(
        data_dir=tmp_path / "tls",
        client_port=port,
        peer_port=port + 1,
        name="tls",
        tls=EtcdTls(
            files["server.pem"],
            files["server-key.pem"],
            files["ca.pem"],
            files["client.pem"],
            files["client-key.pem"],
        ),
    )
    server.start()
    server.wait_ready()
    yield server, files
    server.stop()


async def test_frontend_talks_to_etcd_over_mutual_tls(etcd_with_mtls, start_frontend, connect):
    server, files = etcd_with_mtls
    stub = connect(
        await start_frontend(
            server.endpoint,
            etcd_ca_file=files["ca.pem"],
            etcd_cert_file=files["client.pem"],
            etcd_key_file=files["client-key.pem"],
        )
    )
    await register(stub, node("secure"))
    assert await node_ids(stub) == {"secure"}


async def test_without_a_client_certificate_etcd_refuses_the_frontend(etcd_with_mtls, settings_for):
    server, files = etcd_with_mtls
    frontend = Frontend(
        settings_for(
            server.endpoint,
            etcd_ca_file=files["ca.pem"],
            etcd_request_timeout_seconds=2,
            etcd_connect_timeout_seconds=1,
        )
    )
    with pytest.raises(ServeError) as refused:
        await frontend.start()
    await frontend.stop()
    # The endpoints are right (etcd answered, and refused): the line names the TLS settings.
    message = str(refused.value)
    assert message.startswith(f"etcd at {server.endpoint} refused the TLS handshake (")
    assert message.endswith(
        "and no client certificate is set: set REGISTRY_ETCD_CERT_FILE and "
        "REGISTRY_ETCD_KEY_FILE (etcd's --client-cert-auth)"
    )
    assert "REGISTRY_ETCD_ENDPOINTS" not in message


async def test_a_plaintext_frontend_to_an_etcd_with_tls_is_told_to_set_its_ca(
    etcd_with_mtls, settings_for
):
    server, _ = etcd_with_mtls
    frontend = Frontend(
        settings_for(
            server.endpoint, etcd_request_timeout_seconds=2, etcd_connect_timeout_seconds=1
        )
    )
    with pytest.raises(ServeError, match=r"it may require TLS: set REGISTRY_ETCD_CA_FILE \(and"):
        await frontend.start()
    await frontend.stop()


async def test_unary_calls_are_spread_over_every_endpoint(etcd_cluster, start_frontend, connect):
    endpoints = tuple(member.endpoint for member in etcd_cluster)
    stub = connect(await start_frontend(endpoints))

    def ranges() -> list[float]:
        return [metric(e, "grpc_server_started_total", grpc_method="Range") for e in endpoints]

    before = ranges()
    for _ in range(30):
        await stub.GetNodes(pb.GetNodesRequest())  # each asks etcd for its current revision
    after = ranges()
    assert all(a - b >= 5 for a, b in zip(after, before, strict=True)), (before, after)


async def test_losing_the_etcd_member_behind_the_watch_loses_no_change(
    etcd_cluster, start_frontend, connect
):
    """1. a frontend knows all three members; its streams use one of them.
    2. that member is SIGKILLed while nodes keep registering through the frontend.
    3. the frontend moves to another member; its watcher sees every registration, in order,
       exactly once."""
    frontend = await start_frontend(tuple(member.endpoint for member in etcd_cluster))
    stub = connect(frontend)
    watcher = WatchRecorder(stub).start()
    await watcher.wait_for(lambda r: r.snapshots())
    registered = [await register(stub, node(f"before{i}")) for i in range(5)]
    (behind_streams,) = [
        m for m in etcd_cluster if m.endpoint == frontend.client.connection.endpoint
    ]

    behind_streams.kill()
    for i in range(5):
        registered.append(await register_through_outage(stub, node(f"after{i}")))

    await watcher.wait_for(lambda r: len(r.changes) == 10, timeout=30)
    assert [(c.revision, c.id) for c in watcher.changes] == [
        (r.revision, r.node.id) for r in registered
    ]
    assert not watcher.violations
    assert frontend.client.connection.endpoint != behind_streams.endpoint
    await watcher.close()


async def test_lease_grant_time_to_live_and_revoke(etcd_client):
    lease = await etcd_client.lease.grant(30)
    assert 0 < await etcd_client.lease.time_to_live(lease) <= 30
    await etcd_client.lease.revoke(lease)
    assert await etcd_client.lease.time_to_live(lease) == -1
    await etcd_client.lease.revoke(lease)  # revoking a lease that is gone is not an error


async def test_etcd_errors_arrive_as_the_store_s_own_types(own_etcd):
    client = EtcdClient(EtcdConfig(endpoints=(own_etcd.endpoint,)))
    try:
        lease = await client.lease.grant(30)
        await client.lease.revoke(lease)
        with pytest.raises(LeaseNotFoundError):
            await client.kv.put(b"/typed/k", b"v", lease=lease)
        first = (await client.kv.put(b"/typed/k", b"v")).header.revision
        await client.kv.put(b"/typed/k", b"w")
        await client.kv.compact(first + 1)
        with pytest.raises(StoreCompactedError):
            await client.kv.range_prefix(b"/typed/", revision=first)
    finally:
        await client.close()


async def test_an_endpoint_that_timed_out_is_avoided_until_it_answers_a_probe(etcd_cluster):
    """D83: a frozen member is not tried again after a fixed second, but once it answers."""
    endpoints = tuple(member.endpoint for member in etcd_cluster)
    client = EtcdClient(EtcdConfig(endpoints=endpoints, request_timeout_seconds=1.0))
    leading = await wait_for_leader(etcd_cluster)
    frozen = next(member for member in etcd_cluster if member is not leading)
    connection = client.connection
    try:
        await client.kv.current_revision(b"/avoid/")
        frozen.pause()
        try:
            with pytest.raises(StoreUnavailableError):
                await connection.call(
                    "range",
                    lambda ep: connection.stub(KVStub, ep).Range,
                    RangeRequest(key=b"/avoid/", count_only=True),
                    idempotent=True,
                    endpoint=frozen.endpoint,
                )
            assert connection.avoided == {frozen.endpoint}
            await asyncio.sleep(2.5)  # the fault's length: past the one second it used to last
            for _ in range(20):  # none of them waits on the frozen member
                await client.kv.current_revision(b"/avoid/")
            assert connection.avoided == {frozen.endpoint}
        finally:
            frozen.resume()
        await eventually(lambda: not connection.avoided, timeout=15, message="probe answered")
    finally:
        await client.close()
