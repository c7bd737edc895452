"""Throwaway certificates (trustme) written as PEM files, for TLS and mTLS tests."""

from __future__ import annotations

import os
import socket
import ssl
from pathlib import Path

import trustme


def write_certificates(
    directory: Path, server_names: tuple[str, ...], client_name: str
) -> tuple[trustme.CA, dict[str, str]]:
    """A CA, a server certificate and a client certificate; returns the CA and file paths by
    name: ca.pem, server.pem, server-key.pem, client.pem, client-key.pem."""
    authority = trustme.CA()
    server = authority.issue_cert(*server_names)
    client = authority.issue_cert(client_name)
    files = {}
    for name, blob in {
        "ca.pem": authority.cert_pem,
        "server.pem": server.cert_chain_pems[0],
        "server-key.pem": server.private_key_pem,
        "client.pem": client.cert_chain_pems[0],
        "client-key.pem": client.private_key_pem,
    }.items():
        blob.write_to_path(str(directory / name))
        files[name] = str(directory / name)
    return authority, files


def tls_flags(files: dict[str, str]) -> tuple[str, ...]:
    """The CLI's flags for mTLS with the files of write_certificates."""
    return (
        "--cacert",
        files["ca.pem"],
        "--cert",
        files["client.pem"],
        "--key",
        files["client-key.pem"],
    )


def client_contexts(files: dict[str, str]) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """TLS towards a server of write_certificates: (without a client certificate, with one)."""
    anonymous = ssl.create_default_context(cafile=files["ca.pem"])
    with_certificate = ssl.create_default_context(cafile=files["ca.pem"])
    with_certificate.load_cert_chain(files["client.pem"], files["client-key.pem"])
    return anonymous, with_certificate


def mtls_settings(files: dict[str, str]) -> dict[str, str]:
    """A frontend's settings for TLS with client certificates (mTLS) from write_certificates."""
    return {
        "tls_cert_file": files["server.pem"],
        "tls_key_file": files["server-key.pem"],
        "tls_client_ca_file": files["ca.pem"],
    }


def served_serial(port: int, *, http2: bool = False) -> int:
    """The serial number of the certificate a TLS port on 127.0.0.1 presents to a new client
    (not verified: the test compares serials). `http2`: offer ALPN h2, as gRPC clients do."""
    from cryptography import x509

    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    if http2:
        context.set_alpn_protocols(["h2"])
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return int(x509.load_der_x509_certificate(der).serial_number)


def serial_of(pem: bytes) -> int:
    from cryptography import x509

    return int(x509.load_pem_x509_certificate(pem).serial_number)


class SecretVolume:
    """Files as a Kubernetes Secret volume holds them: each name a symlink through `..data`, a
    symlink to the current version's directory, swapped in one rename so that every file of a
    version appears at once (a certificate never beside the previous key)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self._versions = 0

    def path(self, name: str) -> str:
        return str(self.directory / name)

    def write(self, files: dict[str, bytes]) -> None:
        self._versions += 1
        version = self.directory / f"..version-{self._versions}"
        version.mkdir()
        for name, content in files.items():
            (version / name).write_bytes(content)
            link = self.directory / name
            if not link.is_symlink():
                link.symlink_to(Path("..data") / name)
        staged = self.directory / "..data_tmp"
        staged.symlink_to(version.name)
        os.replace(staged, self.directory / "..data")


def leaf_files(leaf: trustme.LeafCert) -> dict[str, bytes]:
    """A leaf certificate as a Secret of cert-manager's layout holds it."""
    return {"tls.crt": leaf.cert_chain_pems[0].bytes(), "tls.key": leaf.private_key_pem.bytes()}
