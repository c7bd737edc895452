"""Why a frontend cannot be reached over TLS, in words (the SDK's `TlsError`).

grpc reports a failed handshake as "Socket closed", or as OpenSSL's reason codes inside a long
line, and says nothing of which file to change. When a call fails that way, the SDK makes one
handshake of its own with the same files, through Python's `ssl` (whose errors are specific),
and names the cause and the `ClientConfig` field to change:

- the frontend's certificate expired, is not valid yet, is not signed by a CA of `tls_ca_file`,
  or does not name the host it was reached at;
- the frontend hangs up after the handshake: it requires a client certificate (mTLS) and got
  none, or refused the one it got (expired, or signed by a CA it does not trust for clients);
- TLS on one side only: a plaintext frontend while `tls_ca_file` is set, or a TLS frontend
  while it is not.

The probe runs only after a call failed in a way that can be TLS, once per failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import re
import ssl
from pathlib import Path

from client_sdk._certificate_dates import CertificateFormatError, first_certificate_validity
from client_sdk._config import ClientConfig
from client_sdk._errors import TlsError

# What grpc's details say when a handshake, or a connection right after one, failed.
_TLS_SIGNS = re.compile(
    r"Socket closed|handshake|SSL|TSI_|Tls|TLS|Connection reset|security", re.IGNORECASE
)
_HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes(9)  # + an empty SETTINGS frame
_NOT_TLS = ("WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "PACKET_LENGTH_TOO_LONG")
_UNKNOWN_ISSUER = frozenset({2, 18, 19, 20, 21})  # OpenSSL's X509_V_ERR_* for "no trusted CA"
_EXPIRED, _NOT_YET_VALID, _HOST_MISMATCH = 10, 9, 62


def looks_like_tls(details: str) -> bool:
    """Whether grpc's details of an UNAVAILABLE call may hide a TLS failure.

    Not a refused connection or a name that does not resolve.
    """
    return bool(_TLS_SIGNS.search(details))


def _host_port(target: str) -> tuple[str, int] | None:
    """The host and port a target names.

    None for what the probe cannot reach the same way (a unix socket, a name without a port).
    """
    address = re.sub(r"^(dns:(//[^/]*)?/|ipv4:|ipv6:)", "", target)
    if address.startswith("unix:") or "," in address:
        return None
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        return None
    return host.strip("[]"), int(port)


async def diagnose(target: str, config: ClientConfig, timeout_seconds: float) -> TlsError | None:
    """The TLS reason `target` cannot be reached with `config`.

    None when the probe finds none (then the failure was something else, or passed).
    """
    address = _host_port(target)
    if address is None:
        return None
    try:
        async with asyncio.timeout(timeout_seconds):
            if config.tls_ca_file:
                return await _with_tls(target, *address, config)
            return await _without_tls(target, *address)
    except (TimeoutError, OSError, ssl.SSLError):
        return None


async def _with_tls(target: str, host: str, port: int, config: ClientConfig) -> TlsError | None:
    context = ssl.create_default_context(cafile=config.tls_ca_file)
    if config.tls_cert_file:
        context.load_cert_chain(config.tls_cert_file, config.tls_key_file)
    context.set_alpn_protocols(["h2"])
    try:
        if await _hangs_up(host, port, context):
            return _refused_client(target, config)
    except ssl.SSLCertVerificationError as err:
        return _unverified(target, host, config, err)
    except ssl.SSLError as err:
        if err.reason in _NOT_TLS:
            return TlsError(
                f"frontend {target} does not speak TLS (it is plaintext), and tls_ca_file is "
                "set: leave tls_ca_file empty for it",
                "tls_ca_file",
            )
        return TlsError(f"TLS handshake with frontend {target} failed: {err.reason}", "")
    except ConnectionResetError:
        return _refused_client(target, config)
    return None


async def _without_tls(target: str, host: str, port: int) -> TlsError | None:
    """A frontend that completes a TLS handshake speaks TLS, which this client does not."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(["h2"])
    try:
        await _hangs_up(host, port, context)
    except (ssl.SSLError, ConnectionResetError):
        return None
    return TlsError(
        f"frontend {target} speaks TLS and this client does not: set tls_ca_file (the CA "
        "bundle that signed its certificate)",
        "tls_ca_file",
    )


async def _hangs_up(host: str, port: int, context: ssl.SSLContext) -> bool:
    """Completes a handshake and opens HTTP/2 as grpc does: whether the frontend then hangs up.

    True when it hangs up (how a gRPC server refuses a client certificate under TLS 1.3), False
    when it answers. Raises the handshake's own error.
    """
    reader, writer = await asyncio.open_connection(host, port, ssl=context, server_hostname=host)
    try:
        writer.write(_HTTP2_PREFACE)
        await writer.drain()
        return not await reader.read(9)
    finally:
        writer.close()
        # Closed, not closing, before the answer: a socket left to close later is a resource
        # the caller's event loop warns about (or holds on to, per failed call).
        with contextlib.suppress(OSError, ssl.SSLError):
            await writer.wait_closed()


def _unverified(
    target: str, host: str, config: ClientConfig, err: ssl.SSLCertVerificationError
) -> TlsError:
    code, message = err.verify_code, err.verify_message
    if code == _EXPIRED:
        return TlsError(
            f"the certificate of frontend {target} has expired: the frontend must be given a "
            "current one",
            "",
        )
    if code == _NOT_YET_VALID:
        return TlsError(
            f"the certificate of frontend {target} is not valid yet (check the clocks)", ""
        )
    if code in _UNKNOWN_ISSUER:
        return TlsError(
            f"the certificate of frontend {target} is not signed by a CA of tls_ca_file "
            f"{config.tls_ca_file} ({message})",
            "tls_ca_file",
        )
    if code == _HOST_MISMATCH:
        return TlsError(
            f"the certificate of frontend {target} is not valid for {host}: reach it by a name "
            "its certificate holds",
            "",
        )
    return TlsError(f"the certificate of frontend {target} cannot be verified: {message}", "")


def _refused_client(target: str, config: ClientConfig) -> TlsError:
    """The frontend hung up after the handshake.

    Its mTLS refused this client's certificate, or the lack of one.
    """
    if not config.tls_cert_file:
        return TlsError(
            f"frontend {target} requires a client certificate (mTLS): set tls_cert_file and "
            "tls_key_file",
            "tls_cert_file",
        )
    try:
        validity = first_certificate_validity(Path(config.tls_cert_file).read_bytes())
        problem = validity.problem(datetime.datetime.now(datetime.UTC))
    except (OSError, CertificateFormatError):
        problem = ""
    if problem:
        return TlsError(
            f"frontend {target} refused the client certificate {config.tls_cert_file}: it "
            f"{problem}",
            "tls_cert_file",
        )
    return TlsError(
        f"frontend {target} refused the client certificate {config.tls_cert_file}: it is not "
        "signed by a CA the frontend trusts for clients",
        "tls_cert_file",
    )
