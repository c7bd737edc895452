"""When the certificates a frontend uses expire, for the metric that warns before they do
(`noderegistry_certificate_expiry_seconds`) and for refusing an expired one read again.

A file may hold several certificates (a leaf and its chain, a CA bundle): its expiry is the
earliest `notAfter` of them all, since any one of them expiring breaks what the file is for.
The dates are read from the DER (certificate_dates.py): the server carries no X.509 library.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import re
import threading
import time
from collections.abc import Mapping
from pathlib import Path

from registry_service.security.certificate_dates import (
    CertificateFormatError,
    Validity,
    validity_of_der,
)

_PEM_CERTIFICATES = re.compile(
    rb"-----BEGIN CERTIFICATE-----\s*(.+?)\s*-----END CERTIFICATE-----", re.DOTALL
)


def validities(pem: bytes) -> list[Validity]:
    """The validity of every certificate of a PEM text, in order.

    Raises:
        CertificateFormatError: no certificate, or one that cannot be read.
    """
    found = []
    for match in _PEM_CERTIFICATES.finditer(pem):
        try:
            der = base64.b64decode(match.group(1), validate=False)
        except (binascii.Error, ValueError):
            raise CertificateFormatError("a PEM block is not base64") from None
        found.append(validity_of_der(der))
    if not found:
        raise CertificateFormatError("no PEM certificate")
    return found


def file_validity(path: str) -> Validity:
    """From the latest `notBefore` to the earliest `notAfter` of the file's certificates.

    Raises:
        OSError: the file cannot be read.
        CertificateFormatError: it holds no readable certificate.
    """
    found = validities(Path(path).read_bytes())
    return Validity(max(v.not_before for v in found), min(v.not_after for v in found))


def expiry_problem(path: str, now: datetime.datetime | None = None) -> str:
    """Why the file's certificates cannot be used now ("expired on ...", "not valid before
    ..."), or "" (also for a file whose dates cannot be read: TLS itself judges its format)."""
    try:
        validity = file_validity(path)
    except (OSError, CertificateFormatError):
        return ""
    return validity.problem(now or datetime.datetime.now(datetime.UTC))


class CertificateExpiry:
    """When each certificate file in use expires, by the setting that names it; updated when
    a file is read again (from the event loop), read at scrape time (from any thread)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._not_after: dict[str, float] = {}

    def record(self, setting: str, path: str) -> None:
        """Reads the file's expiry (a file whose dates cannot be read is left out)."""
        try:
            not_after = file_validity(path).not_after.timestamp()
        except (OSError, CertificateFormatError):
            with self._lock:
                self._not_after.pop(setting, None)
            return
        with self._lock:
            self._not_after[setting] = not_after

    def seconds_left(self) -> Mapping[str, float]:
        """Seconds until each file's first certificate expires (negative once it has)."""
        now = time.time()
        with self._lock:
            return {setting: at - now for setting, at in self._not_after.items()}
