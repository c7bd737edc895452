"""Certificates replaced on disk are served to the next client without a restart (docs/design.md
§14): the gRPC port, the HTTP API port and the admin port present the new certificate, a new
client CA admits the clients it signs, etcd's client certificate is rotated, and a file that
cannot be used (a key of another certificate, an expired certificate) keeps the one in use and
says why. The files live in a Secret volume's layout (`..data` swapped in one rename)."""

from __future__ import annotations

import asyncio
import datetime
import logging
import re
import ssl
from pathlib import Path

import grpc
import grpc.aio
import pytest
import trustme
from noderegistry.v1 import registry_pb2 as pb
from noderegistry.v1 import registry_pb2_grpc

from registry_service.app import Frontend
from registry_service.process.embedded_etcd import EtcdServer, EtcdTls
from tests.support.api import node
from tests.support.certs import SecretVolume, leaf_files, serial_of, served_serial
from tests.support.http_api import get as get_answer
from tests.support.ports import free_port
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration

RELOADS = "registry_service.security.credential_files"


def reload_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == RELOADS]


async def serials(frontend: Frontend) -> tuple[int, int, int]:
    """What a new client of each port is shown: (gRPC, HTTP API, admin)."""
    assert frontend.api is not None
    grpc_port, api_port, admin_port = await asyncio.gather(
        asyncio.to_thread(served_serial, frontend.port, http2=True),
        asyncio.to_thread(served_serial, frontend.api.port),
        asyncio.to_thread(served_serial, frontend.admin.port),
    )
    return grpc_port, api_port, admin_port


def expiry_seconds(frontend: Frontend, setting: str) -> float:
    value = frontend.metrics.registry.get_sample_value(
        "noderegistry_certificate_expiry_seconds", {"setting": setting}
    )
    assert value is not None, setting
    return value


async def test_a_replaced_certificate_is_served_to_the_next_client_on_every_port(
    tmp_path: Path, start_frontend, caplog
):
    caplog.set_level(logging.INFO, logger=RELOADS)
    authority = trustme.CA()
    first = authority.issue_cert("127.0.0.1")
    volume = SecretVolume(tmp_path / "registry-tls")
    volume.write(leaf_files(first))
    frontend: Frontend = await start_frontend(
        tls_cert_file=volume.path("tls.crt"),
        tls_key_file=volume.path("tls.key"),
        credentials_reload_seconds=0.1,
    )
    first_serial = serial_of(first.cert_chain_pems[0].bytes())
    assert await serials(frontend) == (first_serial,) * 3
    # A client connected before the rotation goes on over its connection.
    credentials = grpc.ssl_channel_credentials(authority.cert_pem.bytes())
    channel = grpc.aio.secure_channel(frontend.address, credentials)
    stub = registry_pb2_grpc.RegistryStub(channel)
    await stub.GetNodes(pb.GetNodesRequest())

    # 1. A new certificate (in 300 days) is served to every new client, on every port.
    later = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=300)
    second = authority.issue_cert("127.0.0.1", not_after=later.replace(tzinfo=None))
    volume.write(leaf_files(second))
    second_serial = serial_of(second.cert_chain_pems[0].bytes())

    async def rotated() -> bool:
        return await serials(frontend) == (second_serial,) * 3

    await eventually(rotated, message="every port serves the new certificate")
    await stub.GetNodes(pb.GetNodesRequest())
    assert abs(expiry_seconds(frontend, "tls_cert_file") - 300 * 86400) < 120
    files = f"{volume.path('tls.crt')}, {volume.path('tls.key')} (tls_cert_file, tls_key_file)"
    assert sorted(reload_lines(caplog)) == [
        f"reloaded the TLS towards the other frontends' admin ports from {files}",
        f"reloaded the certificate of the gRPC, HTTP API and admin ports from {files}: "
        f"certificate valid until {later:%Y-%m-%d %H:%M:%SZ}",
    ]
    caplog.clear()

    # 2. A key of another certificate, then an expired certificate: the one in use stays.
    stranger = authority.issue_cert("127.0.0.1")
    volume.write({**leaf_files(second), "tls.key": stranger.private_key_pem.bytes()})
    await eventually(lambda: len(reload_lines(caplog)) == 2, message="the mismatch is logged")
    mismatch = next(line for line in reload_lines(caplog) if "gRPC" in line)
    caplog.clear()
    past = datetime.datetime(2020, 1, 2, 3, 4, 5)
    expired = authority.issue_cert("127.0.0.1", not_before=past, not_after=past)
    volume.write(leaf_files(expired))
    await eventually(lambda: len(reload_lines(caplog)) == 2, message="the expiry is logged")
    too_old = next(line for line in reload_lines(caplog) if "gRPC" in line)
    prefix = (
        "the certificate of the gRPC, HTTP API and admin ports changed but cannot be used; "
        "kept the one in use (tls_cert_file, tls_key_file): "
    )
    assert mismatch.startswith(prefix) and "(key values mismatch)" in mismatch
    assert too_old == (
        f"{prefix}the certificate in {volume.path('tls.crt')} expired on 2020-01-02 03:04:05Z "
        "(set tls_cert_file)"
    )
    assert await serials(frontend) == (second_serial,) * 3
    await channel.close()


async def test_a_new_client_ca_admits_the_clients_it_signs(tmp_path: Path, start_frontend):
    old_ca, new_ca = trustme.CA(), trustme.CA()
    server = old_ca.issue_cert("127.0.0.1")
    volume = SecretVolume(tmp_path / "registry-tls")
    volume.write({**leaf_files(server), "ca.crt": old_ca.cert_pem.bytes()})
    frontend: Frontend = await start_frontend(
        tls_cert_file=volume.path("tls.crt"),
        tls_key_file=volume.path("tls.key"),
        tls_client_ca_file=volume.path("ca.crt"),
        credentials_reload_seconds=0.1,
    )
    old_client, new_client = old_ca.issue_cert("old-client"), new_ca.issue_cert("new-client")

    async def grpc_admits(client: trustme.LeafCert) -> bool:
        credentials = grpc.ssl_channel_credentials(
            old_ca.cert_pem.bytes(),
            client.private_key_pem.bytes(),
            client.cert_chain_pems[0].bytes(),
        )
        async with grpc.aio.secure_channel(frontend.address, credentials) as channel:
            try:
                await registry_pb2_grpc.RegistryStub(channel).GetNodes(
                    pb.GetNodesRequest(), timeout=3
                )
            except grpc.aio.AioRpcError:
                return False
        return True

    def https_admits(client: trustme.LeafCert) -> bool:
        assert frontend.api is not None
        context = ssl.create_default_context()
        old_ca.configure_trust(context)
        client.configure_cert(context)
        import http.client

        connection = http.client.HTTPSConnection(
            "127.0.0.1", frontend.api.port, context=context, timeout=5
        )
        try:
            connection.request("GET", "/v1/nodes")
            return connection.getresponse().status == 200
        except (ssl.SSLError, OSError):
            return False
        finally:
            connection.close()

    assert await grpc_admits(old_client) and not await grpc_admits(new_client)
    assert await asyncio.to_thread(https_admits, old_client)
    assert not await asyncio.to_thread(https_admits, new_client)

    volume.write({**leaf_files(server), "ca.crt": new_ca.cert_pem.bytes()})

    async def new_ca_in_use() -> bool:
        return await grpc_admits(new_client) and await asyncio.to_thread(https_admits, new_client)

    await eventually(new_ca_in_use, message="the new client CA admits its clients")
    assert not await grpc_admits(old_client)
    assert not await asyncio.to_thread(https_admits, old_client)


@pytest.fixture
def etcd_requiring_client_certificates(tmp_path: Path):
    """An etcd serving TLS and requiring client certificates of `authority`."""
    authority = trustme.CA()
    server, probe = authority.issue_cert("127.0.0.1"), authority.issue_cert("probe")
    files = {}
    for name, blob in {
        "server.pem": server.cert_chain_pems[0],
        "server-key.pem": server.private_key_pem,
        "ca.pem": authority.cert_pem,
        "probe.pem": probe.cert_chain_pems[0],
        "probe-key.pem": probe.private_key_pem,
    }.items():
        blob.write_to_path(str(tmp_path / name))
        files[name] = str(tmp_path / name)
    port = free_port()
    etcd = EtcdServer(
        data_dir=tmp_path / "etcd-tls",
        client_port=port,
        peer_port=port + 1,
        name="tls",
        tls=EtcdTls(
            files["server.pem"],
            files["server-key.pem"],
            files["ca.pem"],
            files["probe.pem"],
            files["probe-key.pem"],
        ),
    )
    etcd.start()
    etcd.wait_ready()
    yield etcd, authority
    etcd.stop()


async def test_a_rotated_etcd_client_certificate_is_used_for_new_connections(
    tmp_path: Path, etcd_requiring_client_certificates, start_frontend, caplog
):
    caplog.set_level(logging.INFO, logger=RELOADS)
    etcd, authority = etcd_requiring_client_certificates
    volume = SecretVolume(tmp_path / "etcd-client-tls")
    first = authority.issue_cert("registry-frontend")
    volume.write({**leaf_files(first), "ca.crt": authority.cert_pem.bytes()})
    frontend: Frontend = await start_frontend(
        etcd.endpoint,
        etcd_ca_file=volume.path("ca.crt"),
        etcd_cert_file=volume.path("tls.crt"),
        etcd_key_file=volume.path("tls.key"),
        credentials_reload_seconds=0.1,
    )
    async with grpc.aio.insecure_channel(frontend.address) as channel:
        stub = registry_pb2_grpc.RegistryStub(channel)
        await stub.Register(pb.RegisterRequest(node=node("before"), ttl_seconds=30))

        later = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=200)
        second = authority.issue_cert("registry-frontend", not_after=later.replace(tzinfo=None))
        volume.write({**leaf_files(second), "ca.crt": authority.cert_pem.bytes()})
        await eventually(
            lambda: any("reloaded the etcd client certificate" in m for m in reload_lines(caplog)),
            message="the etcd client certificate is reloaded",
        )
        assert abs(expiry_seconds(frontend, "etcd_cert_file") - 200 * 86400) < 120
        # Calls from now on go over new channels with the new certificate, and are admitted.
        await stub.Register(pb.RegisterRequest(node=node("after"), ttl_seconds=30))
        listing = await stub.GetNodes(pb.GetNodesRequest())
        assert {n.id for dc in listing.datacenters for n in dc.nodes} == {"before", "after"}


async def test_workers_and_their_supervisor_take_up_new_credentials(
    tmp_path: Path, etcd, spawn_frontend
):
    # 1. serve --workers 2 with TLS and tokens from files in a Secret volume's layout.
    authority = trustme.CA()
    first, second = authority.issue_cert("127.0.0.1"), authority.issue_cert("127.0.0.1")
    volume = SecretVolume(tmp_path / "registry-tls")
    volume.write(leaf_files(first))
    tokens = SecretVolume(tmp_path / "registry-tokens")
    tokens.write({"tokens": b"root admin,register,watch t-root\n"})
    supervisor = await spawn_frontend(
        etcd.endpoint,
        workers=2,
        tls_cert_file=volume.path("tls.crt"),
        tls_key_file=volume.path("tls.key"),
        auth_tokens_file=tokens.path("tokens"),
        credentials_reload_seconds=0.2,
    )
    grpc_port = int(supervisor.address.rsplit(":", 1)[1])
    admin = re.search(r"admin (https://\S+)\)", supervisor.ready_line).group(1)
    admin_port = int(admin.rsplit(":", 1)[1])

    async def shown(port: int, http2: bool = False) -> int:
        return await asyncio.to_thread(served_serial, port, http2=http2)

    first_serial = serial_of(first.cert_chain_pems[0].bytes())
    assert await shown(admin_port) == first_serial
    assert await shown(grpc_port, http2=True) == first_serial

    # 2. A new certificate: the host's admin port and every worker's gRPC port serve it.
    volume.write(leaf_files(second))
    second_serial = serial_of(second.cert_chain_pems[0].bytes())

    async def everywhere() -> bool:
        # New connections spread over both workers: eight in a row all show the new one.
        grpc_serials = [await shown(grpc_port, http2=True) for _ in range(8)]
        return await shown(admin_port) == second_serial and set(grpc_serials) == {second_serial}

    await eventually(everywhere, timeout=20, message="the supervisor and both workers rotated")

    # 3. A narrowed token added to the file: the host port lets it through, the worker that
    #    answers checks the node's datacenter and type.
    ops = b"ops admin:write:dc1/data,admin:read:dc1 t-ops\n"
    tokens.write({"tokens": b"root admin,register,watch t-root\n" + ops})
    client = ssl.create_default_context()
    authority.configure_trust(client)
    client.check_hostname = False

    async def ops_answer(path: str) -> tuple[int, str]:
        answer = await get_answer(f"{admin}{path}", "t-ops", ssl_context=client)
        return answer.status, str(answer.body)

    async def ops_known() -> bool:
        return (await ops_answer("/admin/nodes/dc1/data/n1"))[0] != 401

    await eventually(ops_known, timeout=20, message="the new token is known on the host port")
    assert (await ops_answer("/admin/nodes/dc1/data/n1"))[0] == 200  # allowed (no such node)
    status, body = await ops_answer("/admin/nodes/dc2/data/n2")
    assert status == 403 and "lacks admin:read:dc2/data" in body
    status, body = await ops_answer("/admin/frontends")
    assert status == 403 and "lacks admin:read (every datacenter and type" in body
