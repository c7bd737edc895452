"""When a PEM certificate is valid: its X.509 `notBefore` and `notAfter`, read from the DER itself.

The standard library verifies certificates but does not say when one expires, and neither the
server nor the SDK carries an X.509 library, so this walks the few DER fields in front of the
validity (RFC 5280 4.1). `serve` refuses an expired certificate of its own at start-up; the SDK
names an expired client certificate when a frontend hangs up on it. The SDK and the service
share no code but the generated stubs, so the module exists twice, word for word:
registry_service/security/certificate_dates.py and client_sdk/_certificate_dates.py (a test
compares).
"""

from __future__ import annotations

import base64
import binascii
import datetime
import re
from dataclasses import dataclass

_PEM_CERTIFICATE = re.compile(
    rb"-----BEGIN CERTIFICATE-----\s*(.+?)\s*-----END CERTIFICATE-----", re.DOTALL
)
_SEQUENCE, _UTC_TIME, _GENERALIZED_TIME, _VERSION_TAG = 0x30, 0x17, 0x18, 0xA0


class CertificateFormatError(ValueError):
    """The bytes are not a PEM certificate this module can read."""


@dataclass(frozen=True)
class Validity:
    """The period a certificate is valid in, in UTC."""

    not_before: datetime.datetime
    not_after: datetime.datetime

    def problem(self, now: datetime.datetime) -> str:
        """`expired on ...`, `not valid before ...`, or "" while valid at `now` (UTC)."""
        if now > self.not_after:
            return f"expired on {self.not_after:%Y-%m-%d %H:%M:%SZ}"
        if now < self.not_before:
            return f"not valid before {self.not_before:%Y-%m-%d %H:%M:%SZ}"
        return ""


def _element(data: bytes, offset: int, end: int) -> tuple[int, int, int]:
    """(tag, start of the content, end of the content) of the DER element at `offset`.

    The element must lie within its parent, which ends at `end`: a length that reaches past it
    (a truncated or altered certificate) is a CertificateFormatError, never an IndexError.
    """
    if offset + 2 > end:
        raise CertificateFormatError("truncated DER")
    tag, length = data[offset], data[offset + 1]
    start = offset + 2
    if length & 0x80:
        count = length & 0x7F
        if count == 0 or count > 4 or start + count > end:
            raise CertificateFormatError("truncated DER")
        length = int.from_bytes(data[start : start + count], "big")
        start += count
    if start + length > end:
        raise CertificateFormatError("truncated DER")
    return tag, start, start + length


def _time(tag: int, text: bytes) -> datetime.datetime:
    value = text.decode("ascii", "replace").rstrip("Z")
    if tag == _UTC_TIME:  # YYMMDDHHMMSS: 50-99 are the 1900s (RFC 5280 4.1.2.5.1)
        century = "19" if value[:2].isdigit() and int(value[:2]) >= 50 else "20"
        value = century + value
    elif tag != _GENERALIZED_TIME:
        raise CertificateFormatError("the validity is not a time")
    try:
        moment = datetime.datetime.strptime(value[:14], "%Y%m%d%H%M%S")
    except ValueError:
        raise CertificateFormatError(f"unreadable time {value!r}") from None
    return moment.replace(tzinfo=datetime.UTC)


def validity_of_der(der: bytes) -> Validity:
    """The validity of one DER certificate.

    Raises:
        CertificateFormatError: the bytes are not a certificate, or one cut short or altered.
    """
    tag, start, end = _element(der, 0, len(der))  # Certificate
    if tag != _SEQUENCE:
        raise CertificateFormatError("not a certificate")
    tag, offset, end = _element(der, start, end)  # TBSCertificate: what follows lies within
    if tag != _SEQUENCE:
        raise CertificateFormatError("not a certificate")
    if offset < end and der[offset] == _VERSION_TAG:
        offset = _element(der, offset, end)[2]
    for _ in range(3):  # serialNumber, signature, issuer
        offset = _element(der, offset, end)[2]
    tag, inner, validity_end = _element(der, offset, end)  # Validity
    if tag != _SEQUENCE:
        raise CertificateFormatError("no validity where RFC 5280 puts it")
    before_tag, before_start, before_end = _element(der, inner, validity_end)
    after_tag, after_start, after_end = _element(der, before_end, validity_end)
    return Validity(
        _time(before_tag, der[before_start:before_end]),
        _time(after_tag, der[after_start:after_end]),
    )


def first_certificate_validity(pem: bytes) -> Validity:
    """The validity of the first certificate of a PEM file (a server's own, before its chain)."""
    match = _PEM_CERTIFICATE.search(pem)
    if match is None:
        raise CertificateFormatError("no PEM certificate")
    try:
        der = base64.b64decode(match.group(1), validate=False)
    except (binascii.Error, ValueError):
        raise CertificateFormatError("the PEM block is not base64") from None
    return validity_of_der(der)
