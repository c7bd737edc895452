"""Why `serve` cannot start (or go on), said in one line that names the setting to change.

`ServeError` is what every refusal raises; the CLI prints `error: <message>` and exits 1, with a
traceback only at `--log-level debug` (decision D42). The checks here run before anything starts
(no etcd, no log line yet): a TLS or tokens file that cannot be used, a federation setting that
does not parse; ports are listeners.py's (a port another process serves). What can only fail
later (etcd unreachable, a bind lost in a race) raises the same error where it happens.
"""

from __future__ import annotations

import datetime
import re
import ssl
from pathlib import Path

from registry_service.datacenters import Datacenters, DatacentersError
from registry_service.security.bearer_tokens import TokenFileError, TokenTable
from registry_service.security.certificate_dates import (
    CertificateFormatError,
    first_certificate_validity,
)
from registry_service.settings import Settings, env_name


class ServeError(Exception):
    """`serve` cannot start or go on; the message is one line naming the cause and the setting."""


def one_line(text: str) -> str:
    """Whitespace folded: an error line never spans lines (gRPC's details can)."""
    return " ".join(text.split())


def check_files(settings: Settings) -> None:
    """Refuses a TLS certificate, key or CA bundle, or a tokens file, that cannot be used, naming
    the setting; before, these failed deep inside gRPC's or etcd's setup with a traceback."""
    _check_pair(settings.tls_cert_file, settings.tls_key_file, "tls_cert_file", "tls_key_file")
    _check_ca(settings.tls_client_ca_file, "tls_client_ca_file")
    if settings.tls_client_ca_file and not settings.tls_cert_file:
        raise ServeError(
            "a client CA (mTLS) needs TLS on the gRPC port: set REGISTRY_TLS_CERT_FILE and "
            "REGISTRY_TLS_KEY_FILE, or unset REGISTRY_TLS_CLIENT_CA_FILE"
        )
    _check_ca(settings.etcd_ca_file, "etcd_ca_file")
    _check_pair(settings.etcd_cert_file, settings.etcd_key_file, "etcd_cert_file", "etcd_key_file")
    try:
        TokenTable.load(settings.auth_tokens_file)
    except TokenFileError as err:
        raise ServeError(f"{err}: set {env_name('auth_tokens_file')}") from None
    _check_datacenters(settings)
    _check_health(settings)


def _check_health(settings: Settings) -> None:
    """Health checks and flap damping: limits and a penalty scale that make sense."""
    if settings.health_probe_concurrency < 1:
        raise ServeError(
            "health_probe_concurrency must be at least 1: set "
            f"{env_name('health_probe_concurrency')}"
        )
    if not settings.health_check_min_interval_seconds > 0:
        raise ServeError(
            "health_check_min_interval_seconds must be above 0: set "
            f"{env_name('health_check_min_interval_seconds')}"
        )
    if not settings.damping_suppress_penalty:
        return  # no damping
    if settings.damping_half_life_seconds <= 0 or settings.damping_max_suppress_seconds <= 0:
        raise ServeError(
            "flap damping needs a half-life and a longest hold above 0: set "
            f"{env_name('damping_half_life_seconds')} and "
            f"{env_name('damping_max_suppress_seconds')} (or "
            f"{env_name('damping_suppress_penalty')}=0 for no damping)"
        )
    if not 0 < settings.damping_reuse_penalty < settings.damping_suppress_penalty:
        raise ServeError(
            f"damping_reuse_penalty ({settings.damping_reuse_penalty:g}) must lie between 0 and "
            f"damping_suppress_penalty ({settings.damping_suppress_penalty:g}): set "
            f"{env_name('damping_reuse_penalty')}"
        )
    ceiling = settings.damping_reuse_penalty * 2.0 ** (
        settings.damping_max_suppress_seconds / settings.damping_half_life_seconds
    )
    if ceiling <= settings.damping_suppress_penalty:
        raise ServeError(
            f"flap damping caps the penalty at {ceiling:g} (the one that decays to "
            f"damping_reuse_penalty in damping_max_suppress_seconds), not above "
            f"damping_suppress_penalty ({settings.damping_suppress_penalty:g}): no node would "
            f"ever be damped; raise {env_name('damping_max_suppress_seconds')}"
        )


# Each certificate `serve` presents, with the setting of its key.
_OWN_CERTIFICATES = (
    ("tls_cert_file", "tls_key_file"),
    ("etcd_cert_file", "etcd_key_file"),
    ("remote_tls_cert_file", "remote_tls_key_file"),
)


def check_certificates(settings: Settings, now: datetime.datetime | None = None) -> None:
    """Refuses a certificate of its own that has expired or is not valid yet: with one, `serve`
    would start and every handshake would fail later, far from the file and the setting."""
    moment = now or datetime.datetime.now(datetime.UTC)
    for cert_setting, key_setting in _OWN_CERTIFICATES:
        path = getattr(settings, cert_setting)
        if not path:
            continue
        try:
            problem = first_certificate_validity(Path(path).read_bytes()).problem(moment)
        except (OSError, CertificateFormatError):
            continue  # check_files names an unreadable file; TLS itself judges the format
        if problem:
            raise ServeError(
                f"the certificate in {path} {problem}: set {env_name(cert_setting)} and "
                f"{env_name(key_setting)} to a current certificate and its key"
            )


# What grpc's details say when a TLS handshake with etcd failed (or TLS met plaintext).
_TLS_SIGNS = re.compile(r"TSI_|handshake|SSL|Socket closed|Unwrap failed", re.IGNORECASE)


def etcd_tls_refusal(settings: Settings, endpoints: str, detail: str) -> ServeError | None:
    """The start-up failure for an etcd that could not be reached because of TLS, naming the
    etcd TLS settings (the endpoints are right: etcd answered, and refused); None otherwise."""
    if not _TLS_SIGNS.search(detail):
        return None
    seen = f"etcd at {endpoints} refused the TLS handshake ({one_line(detail)})"
    if not settings.etcd_ca_file:
        return ServeError(
            f"{seen}: it may require TLS: set {env_name('etcd_ca_file')} (and "
            f"{env_name('etcd_cert_file')} and {env_name('etcd_key_file')} for its "
            "client-cert-auth)"
        )
    if not settings.etcd_cert_file:
        return ServeError(
            f"{seen}, and no client certificate is set: set {env_name('etcd_cert_file')} and "
            f"{env_name('etcd_key_file')} (etcd's --client-cert-auth)"
        )
    return ServeError(
        f"{seen}: check {env_name('etcd_ca_file')} (the CA of etcd's certificate), "
        f"{env_name('etcd_cert_file')} and {env_name('etcd_key_file')} (a client certificate "
        "etcd's CA signed)"
    )


def _check_datacenters(settings: Settings) -> None:
    """The federation's settings: the list of remotes, and the TLS files toward them."""
    try:
        Datacenters.from_settings(settings.datacenter, settings.remote_datacenters)
    except DatacentersError as err:
        raise ServeError(f"{err}: set {env_name(err.setting)}") from None
    _check_ca(settings.remote_tls_ca_file, "remote_tls_ca_file")
    _check_pair(
        settings.remote_tls_cert_file,
        settings.remote_tls_key_file,
        "remote_tls_cert_file",
        "remote_tls_key_file",
    )
    if settings.remote_tls_cert_file and not settings.remote_tls_ca_file:
        raise ServeError(
            "a client certificate toward the remote datacenters needs TLS toward them: set "
            f"{env_name('remote_tls_ca_file')}"
        )


def _readable(path: str, setting: str) -> None:
    try:
        Path(path).read_bytes()
    except OSError as err:
        raise ServeError(
            f"cannot read {path} ({(err.strerror or str(err)).lower()}): set {env_name(setting)}"
        ) from None


def _check_pair(cert: str, key: str, cert_setting: str, key_setting: str) -> None:
    if not cert and not key:
        return
    if not (cert and key):
        missing = key_setting if cert else cert_setting
        raise ServeError(f"a certificate needs its key and the other way round: set {missing}")
    _readable(cert, cert_setting)
    _readable(key, key_setting)
    try:
        # The password callback keeps an encrypted key from prompting on the terminal.
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(
            cert, key, password=lambda: ""
        )
    except ssl.SSLError as err:
        raise ServeError(
            f"{cert} and {key} are not a PEM certificate and its unencrypted key"
            f"{_ssl_reason(err)}: set {env_name(cert_setting)} and "
            f"{env_name(key_setting)}"
        ) from None


def _check_ca(path: str, setting: str) -> None:
    if not path:
        return
    _readable(path, setting)
    try:
        ssl.create_default_context(cafile=path)
    except ssl.SSLError as err:
        raise ServeError(
            f"{path} is not a PEM CA bundle{_ssl_reason(err)}: set {env_name(setting)}"
        ) from None


def _ssl_reason(err: ssl.SSLError) -> str:
    """OpenSSL's reason code in words, if it gave one: ` (key values mismatch)`."""
    return f" ({err.reason.replace('_', ' ').lower()})" if err.reason else ""


def check_tls_files(cert: str, key: str, ca: str, settings: tuple[str, str, str]) -> None:
    """What `check_files` checks of one set of TLS files (a certificate, its key, a CA bundle;
    `settings` names them), for a set read again while serving (credentials.py).

    Raises:
        ServeError: a file cannot be read, or is not what its setting needs.
    """
    _check_pair(cert, key, settings[0], settings[1])
    _check_ca(ca, settings[2])
