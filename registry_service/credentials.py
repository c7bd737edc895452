"""A frontend's credentials from the settings, each read again when its files change
(credential_files.py): the tokens file, the ports' certificate (gRPC, HTTP API, admin), etcd's
client TLS, the CA of the other frontends' admin ports and the TLS toward the remote
datacenters; and when each certificate expires.

    set         files                                     put in use by
    tokens      auth_tokens_file                          TokenTable.replace (every port; open
                                                          streams of a removed token end)
    server_tls  tls_cert_file, tls_key_file,              the gRPC port's dynamic credentials
                tls_client_ca_file                        and the HTTP ports' ServerTls
    etcd_tls    etcd_ca_file, etcd_cert_file, etcd_key_file   new etcd channels
    peer_tls    peer_ca_file (else tls_client_ca_file),   the cluster-wide views' client TLS
                tls_cert_file, tls_key_file
    remote_tls  remote_tls_ca_file, remote_tls_cert_file, the followers, started anew with new
                remote_tls_key_file                       clients (Federation.follow_anew)

A set that cannot be used (unreadable, a key that is not the certificate's, an expired
certificate) keeps the one in use, and the log says why.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Callable
from typing import Any

import grpc

from registry_service.federation.follower import Federation
from registry_service.rpc.server import ServerCertificates
from registry_service.security.bearer_tokens import TokenTable
from registry_service.security.certificates import CertificateExpiry, expiry_problem, file_validity
from registry_service.security.credential_files import CredentialFiles, Reloadable
from registry_service.settings import Settings
from registry_service.startup import check_tls_files
from registry_service.store.etcd_client.connection import EtcdConnection, load_credentials
from registry_service.web.auth import ServerTls, client_context, server_context
from registry_service.web.peers import PeerAdmins

_PORT_SETTINGS = ("tls_cert_file", "tls_key_file", "tls_client_ca_file")
_ETCD_SETTINGS = ("etcd_cert_file", "etcd_key_file", "etcd_ca_file")
_REMOTE_SETTINGS = ("remote_tls_cert_file", "remote_tls_key_file", "remote_tls_ca_file")


def _check_current(path: str, setting: str) -> None:
    problem = expiry_problem(path)
    if problem:
        raise ValueError(f"the certificate in {path} {problem} (set {setting})")


def _valid_until(path: str) -> str:
    try:
        not_after = file_validity(path).not_after
    except Exception:  # the dates are a detail of the log line
        return ""
    return f"certificate valid until {not_after:%Y-%m-%d %H:%M:%SZ}"


class Credentials:
    """Every credential of one frontend (or of a supervisor's host admin port), and the files
    they are read again from."""

    def __init__(self, settings: Settings, *, grpc_port: bool = True) -> None:
        """`grpc_port`: whether this process serves the gRPC port (a supervisor serves only
        its host admin port).

        Raises:
            TokenFileError: the tokens file cannot be used (`serve` checked it before).
        """
        self.settings = settings
        self.files = CredentialFiles()
        self.expiry = CertificateExpiry()
        path = settings.auth_tokens_file
        self.tokens = TokenTable.load(path)
        self.files.watch(
            Reloadable(
                "tokens",
                "tokens file",
                (("auth_tokens_file", path),),
                load=lambda: TokenTable.load(path),
                apply=self.tokens.replace,
                describe=lambda table: f"{len(table)} token{'s' if len(table) != 1 else ''}",
            )
        )
        cert, key, ca = settings.tls_cert_file, settings.tls_key_file, settings.tls_client_ca_file
        self.grpc_tls = ServerCertificates(cert, key, ca) if cert and grpc_port else None
        self.http_tls = ServerTls.of(cert, key, ca)
        if cert:
            self.files.watch(
                Reloadable(
                    "server_tls",
                    "certificate of the gRPC, HTTP API and admin ports",
                    tuple(zip(_PORT_SETTINGS, (cert, key, ca), strict=True)),
                    load=self._load_ports,
                    apply=self._apply_ports,
                    describe=lambda _: _valid_until(cert),
                )
            )
        for setting in (
            "tls_cert_file",
            "tls_client_ca_file",
            "remote_tls_cert_file",
            "remote_tls_ca_file",
        ):
            self._record(setting)

    def count_reloads(self, observe: Callable[[str, bool], None]) -> None:
        """`observe(set, applied)` is called after each attempt to read a changed set."""
        self.files.observe = observe

    def _record(self, setting: str) -> None:
        path = getattr(self.settings, setting)
        if path:
            self.expiry.record(setting, path)

    # -- the ports -----------------------------------------------------------------------------

    def _load_ports(self) -> tuple[grpc.ServerCertificateConfiguration | None, ssl.SSLContext]:
        settings = self.settings
        cert, key, ca = settings.tls_cert_file, settings.tls_key_file, settings.tls_client_ca_file
        check_tls_files(cert, key, ca, _PORT_SETTINGS)
        _check_current(cert, "tls_cert_file")
        context = server_context(cert, key, ca)
        assert context is not None  # a certificate is set
        grpc_config = ServerCertificates.load(cert, key, ca) if self.grpc_tls else None
        return grpc_config, context

    def _apply_ports(
        self, loaded: tuple[grpc.ServerCertificateConfiguration | None, ssl.SSLContext]
    ) -> None:
        grpc_config, context = loaded
        if self.grpc_tls is not None and grpc_config is not None:
            self.grpc_tls.replace(grpc_config)
        if self.http_tls is not None:
            self.http_tls.replace(context)
        self._record("tls_cert_file")
        self._record("tls_client_ca_file")

    def grpc_credentials(self) -> grpc.ServerCredentials | None:
        """The gRPC port's server credentials (None: plaintext)."""
        return self.grpc_tls.credentials() if self.grpc_tls is not None else None

    # -- the cluster-wide views -----------------------------------------------------------------

    def peer_context(self) -> ssl.SSLContext | None:
        """TLS towards the other frontends' admin ports (None: this frontend has no TLS)."""
        settings = self.settings
        if not settings.tls_cert_file:
            return None
        return client_context(self._peer_ca(), settings.tls_cert_file, settings.tls_key_file)

    def _peer_ca(self) -> str:
        return self.settings.peer_ca_file or self.settings.tls_client_ca_file

    def attach_peers(self, peers: PeerAdmins) -> None:
        """Follows the files of `peer_context`: `peers` gets a new context when they change."""
        settings = self.settings
        if not settings.tls_cert_file:
            return
        ca, cert, key = self._peer_ca(), settings.tls_cert_file, settings.tls_key_file
        ca_setting = "peer_ca_file" if settings.peer_ca_file else "tls_client_ca_file"
        self._record("peer_ca_file")

        def load() -> ssl.SSLContext:
            check_tls_files(cert, key, ca, ("tls_cert_file", "tls_key_file", ca_setting))
            _check_current(cert, "tls_cert_file")
            return client_context(ca, cert, key)

        def apply(context: ssl.SSLContext) -> None:
            peers.replace_ssl(context)
            self._record("peer_ca_file")

        self.files.watch(
            Reloadable(
                "peer_tls",
                "TLS towards the other frontends' admin ports",
                ((ca_setting, ca), ("tls_cert_file", cert), ("tls_key_file", key)),
                load=load,
                apply=apply,
            )
        )

    # -- the remote datacenters ------------------------------------------------------------------

    def attach_federation(self, federation: Federation) -> None:
        """Follows the TLS files toward the remote datacenters: when they change, every
        follower's stream ends and a new one opens with them."""
        settings = self.settings
        ca, cert, key = (
            settings.remote_tls_ca_file,
            settings.remote_tls_cert_file,
            settings.remote_tls_key_file,
        )
        if not ca or not federation.followers:
            return

        def load() -> Any:
            check_tls_files(cert, key, ca, _REMOTE_SETTINGS)
            if cert:
                _check_current(cert, "remote_tls_cert_file")
            return federation.new_clients()

        def apply(clients: Any) -> None:
            federation.follow_anew(clients)
            self._record("remote_tls_cert_file")
            self._record("remote_tls_ca_file")

        def describe(_: Any) -> str:
            followers = ", ".join(follower.datacenter for follower in federation.followers)
            valid = f"; {_valid_until(cert)}" if cert else ""
            return f"the followers of {followers} reconnect with them{valid}"

        self.files.watch(
            Reloadable(
                "remote_tls",
                "TLS towards the remote datacenters",
                (
                    ("remote_tls_ca_file", ca),
                    ("remote_tls_cert_file", cert),
                    ("remote_tls_key_file", key),
                ),
                load=load,
                apply=apply,
                describe=describe,
            )
        )

    # -- etcd ------------------------------------------------------------------------------------

    def attach_etcd(self, connection: EtcdConnection) -> None:
        """Follows etcd's TLS files: new channels with the new ones when they change."""
        config = connection.config
        self._record("etcd_ca_file")
        self._record("etcd_cert_file")
        if not config.ca_file:
            return

        def load() -> grpc.ChannelCredentials:
            check_tls_files(config.cert_file, config.key_file, config.ca_file, _ETCD_SETTINGS)
            if config.cert_file:
                _check_current(config.cert_file, "etcd_cert_file")
            credentials = load_credentials(config)
            assert credentials is not None  # a CA is set
            return credentials

        def apply(credentials: grpc.ChannelCredentials) -> None:
            connection.replace_credentials(credentials)
            self._record("etcd_ca_file")
            self._record("etcd_cert_file")

        self.files.watch(
            Reloadable(
                "etcd_tls",
                "etcd client certificate",
                (
                    ("etcd_ca_file", config.ca_file),
                    ("etcd_cert_file", config.cert_file),
                    ("etcd_key_file", config.key_file),
                ),
                load=load,
                apply=apply,
                describe=lambda _: _valid_until(config.cert_file) if config.cert_file else "",
            )
        )

    # -- running ---------------------------------------------------------------------------------

    def start(self) -> asyncio.Task[Any]:
        """Checks the files every `credentials_reload_seconds` until the task is cancelled."""
        return asyncio.create_task(
            self.files.run(self.settings.credentials_reload_seconds), name="credential files"
        )


async def stop(task: asyncio.Task[Any] | None) -> None:
    """Cancels a task of `Credentials.start` and waits for it."""
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
