"""Reading a certificate's validity from its DER, as `serve` (and the SDK's copy) does."""

from __future__ import annotations

import base64
import datetime
import re
from pathlib import Path

import pytest
import trustme

from client_sdk import _certificate_dates as sdk_certificate_dates
from registry_service.security import certificate_dates
from registry_service.security.certificate_dates import (
    CertificateFormatError,
    first_certificate_validity,
)
from registry_service.settings import Settings
from registry_service.startup import check_certificates

REPO = Path(__file__).resolve().parents[4]
UTC = datetime.UTC


def test_the_validity_is_read_from_a_pem_certificate_and_its_chain():
    authority = trustme.CA()
    issued = authority.issue_cert(
        "a.example",
        not_before=datetime.datetime(2020, 1, 2, 3, 4, 5),
        not_after=datetime.datetime(2051, 6, 7, 8, 9, 10),  # past 2049: GeneralizedTime
    )
    validity = first_certificate_validity(b"".join(p.bytes() for p in issued.cert_chain_pems))
    assert validity.not_before == datetime.datetime(2020, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert validity.not_after == datetime.datetime(2051, 6, 7, 8, 9, 10, tzinfo=UTC)
    assert validity.problem(datetime.datetime(2030, 1, 1, tzinfo=UTC)) == ""
    assert validity.problem(datetime.datetime(2052, 1, 1, tzinfo=UTC)) == (
        "expired on 2051-06-07 08:09:10Z"
    )
    assert validity.problem(datetime.datetime(2019, 1, 1, tzinfo=UTC)) == (
        "not valid before 2020-01-02 03:04:05Z"
    )


@pytest.mark.parametrize(
    "pem",
    [
        b"not a certificate",
        b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        b"-----BEGIN CERTIFICATE-----\nMAMCAQE=\n-----END CERTIFICATE-----\n",
    ],
)
def test_what_is_not_a_certificate_is_refused_with_a_format_error(pem):
    with pytest.raises(CertificateFormatError):
        first_certificate_validity(pem)


def test_the_sdk_carries_the_same_module_word_for_word():
    # SDK and service share no code but the generated stubs (import contracts): two copies.
    assert (REPO / "client_sdk" / "_certificate_dates.py").read_text() == Path(
        certificate_dates.__file__
    ).read_text()


def _der_length(length: int) -> bytes:
    if length < 0x80:
        return bytes([length])
    octets = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(octets)]) + octets


def _sequence(content: bytes) -> bytes:
    return b"\x30" + _der_length(len(content)) + content


def _pem(der: bytes) -> bytes:
    body = base64.encodebytes(der)
    return b"-----BEGIN CERTIFICATE-----\n" + body + b"-----END CERTIFICATE-----\n"


def _tbs_cut_at_every_length() -> list[bytes]:
    """A real certificate whose TBSCertificate is cut short at every length before the end of
    its validity, the lengths of both wrappers rewritten to match: only an element inside runs
    past its parent."""
    der = base64.b64decode(
        re.search(
            rb"-----BEGIN CERTIFICATE-----\s*(.+?)\s*-----END",
            trustme.CA().issue_cert("a.example").cert_chain_pems[0].bytes(),
            re.DOTALL,
        ).group(1)
    )
    _, start, end = certificate_dates._element(der, 0, len(der))
    _, tbs_start, tbs_end = certificate_dates._element(der, start, end)
    tbs = der[tbs_start:tbs_end]
    offset = 0
    for _ in range(5):  # version, serialNumber, signature, issuer, validity
        offset = certificate_dates._element(tbs, offset, len(tbs))[2]
    return [_sequence(_sequence(tbs[:cut])) for cut in range(offset)]


GARBLED = [
    _sequence(_sequence(b"")),  # an empty TBSCertificate (was an IndexError)
    _sequence(  # a UTCTime of letters (was a ValueError from int())
        _sequence(
            b"\x02\x01\x01"  # serialNumber
            + _sequence(b"")  # signature
            + _sequence(b"")  # issuer
            + _sequence(b"\x17\x0dABCDEFGHIJKLZ\x17\x0dABCDEFGHIJKLZ")  # validity
        )
    ),
    b"\x30\x85\xff\xff\xff\xff\xff",  # a length of five octets
    b"\x30\x80",  # an indefinite length (BER, never DER)
]


@pytest.mark.parametrize("module", [certificate_dates, sdk_certificate_dates])
def test_a_truncated_or_garbled_certificate_is_a_format_error_in_one_line(module):
    # Every way a certificate can be cut short or altered is the module's own error (which
    # every caller handles), never an IndexError or ValueError escaping to a traceback.
    for der in GARBLED + _tbs_cut_at_every_length():
        with pytest.raises(module.CertificateFormatError) as raised:
            module.first_certificate_validity(_pem(der))
        assert "\n" not in str(raised.value) and str(raised.value)


def test_serve_startup_reads_a_truncated_certificate_without_a_traceback(tmp_path):
    # serve's own expiry check meets such a file before (or instead of) TLS: it leaves the
    # format to TLS, which names the setting (tests/integration/test_tls_errors.py runs serve).
    cert = tmp_path / "cut.pem"
    cert.write_bytes(_pem(GARBLED[0]))
    check_certificates(Settings(tls_cert_file=str(cert), tls_key_file=str(cert)))
