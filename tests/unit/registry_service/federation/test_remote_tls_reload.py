"""The TLS files toward the remote datacenters, read again when they change: the followers are
made anew with clients of the new files; files that cannot be used keep the followers as they
are (the integration test, tests/integration/test_remote_tls_reload.py, follows a datacenter)."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import trustme

from registry_service.credentials import Credentials
from registry_service.federation.follower import Federation
from registry_service.hub.remote_view import RemoteViews
from registry_service.settings import Settings
from tests.support.certs import SecretVolume, leaf_files

RELOADS = "registry_service.security.credential_files"


def client_files(authority: trustme.CA) -> dict[str, bytes]:
    return {**leaf_files(authority.issue_cert("follower")), "ca.crt": authority.cert_pem.bytes()}


def federated(volume: SecretVolume) -> tuple[Credentials, Federation]:
    settings = dataclasses.replace(
        Settings(),
        datacenter="dc1",
        remote_tls_ca_file=volume.path("ca.crt"),
        remote_tls_cert_file=volume.path("tls.crt"),
        remote_tls_key_file=volume.path("tls.key"),
    )
    federation = Federation({"dc2": ("127.0.0.1:1",)}, RemoteViews(["dc2"]), settings)
    credentials = Credentials(settings)
    credentials.attach_federation(federation)
    return credentials, federation


async def test_new_files_make_new_followers_and_close_the_old_clients(tmp_path: Path, caplog):
    caplog.set_level(logging.INFO, logger=RELOADS)
    volume = SecretVolume(tmp_path / "remote-tls")
    volume.write(client_files(trustme.CA()))
    credentials, federation = federated(volume)
    (old,) = federation.followers
    closed: list[str] = []
    close = old.client.close

    async def closing() -> None:
        closed.append(old.datacenter)
        await close()

    old.client.close = closing  # type: ignore[method-assign]

    volume.write(client_files(trustme.CA()))
    credentials.files.check()
    (new,) = federation.followers
    assert new is not old and new.client is not old.client and new.datacenter == "dc2"
    (line,) = [r.getMessage() for r in caplog.records]
    assert line.startswith("reloaded the TLS towards the remote datacenters from ")
    assert "): the followers of dc2 reconnect with them; certificate valid until " in line
    await federation.stop()
    assert closed == ["dc2"]  # the old client, once its follower was done


async def test_files_that_cannot_be_used_keep_the_followers(tmp_path: Path, caplog):
    caplog.set_level(logging.INFO, logger=RELOADS)
    authority = trustme.CA()
    volume = SecretVolume(tmp_path / "remote-tls")
    volume.write(client_files(authority))
    credentials, federation = federated(volume)
    (kept,) = federation.followers
    stranger = authority.issue_cert("stranger")
    volume.write({**client_files(authority), "tls.key": stranger.private_key_pem.bytes()})
    credentials.files.check()
    assert federation.followers == [kept]
    (line,) = [r.getMessage() for r in caplog.records]
    assert line.startswith(
        "the TLS towards the remote datacenters changed but cannot be used; kept the one in use "
        "(remote_tls_ca_file, remote_tls_cert_file, remote_tls_key_file): "
    )
    assert line.endswith(
        "(key values mismatch): set REGISTRY_REMOTE_TLS_CERT_FILE and REGISTRY_REMOTE_TLS_KEY_FILE"
    )
    await federation.stop()
