"""Reading a certificate's validity from its DER, as `serve` (and the SDK's copy) does."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest
import trustme

from registry_service import certificate_dates
from registry_service.certificate_dates import CertificateFormatError, first_certificate_validity

REPO = Path(__file__).resolve().parents[3]
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
