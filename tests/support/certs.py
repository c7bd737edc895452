"""Throwaway certificates (trustme) written as PEM files, for TLS and mTLS tests."""

from __future__ import annotations

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
