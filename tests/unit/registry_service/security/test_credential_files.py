"""Credential files read again when they change (credential_files.py), and the expiry of the
certificates in them (certificates.py)."""

from __future__ import annotations

import datetime
import logging
import os
from pathlib import Path

import pytest
import trustme

from registry_service.security.certificate_dates import CertificateFormatError
from registry_service.security.certificates import CertificateExpiry, expiry_problem, file_validity
from registry_service.security.credential_files import CredentialFiles, Reloadable


def replace(path: Path, text: str) -> None:
    staged = path.with_suffix(".new")
    staged.write_text(text)
    os.replace(staged, path)


class Loaded:
    """A credential that is a file's text; "bad" in it cannot be used."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.value = path.read_text()

    def load(self) -> str:
        text = self.path.read_text()
        if "bad" in text:
            raise ValueError(f"{self.path}: bad\nsecond line")
        return text

    def reloadable(self) -> Reloadable[str]:
        return Reloadable(
            "test",
            "test file",
            (("test_file", str(self.path)), ("unset_file", "")),
            load=self.load,
            apply=lambda value: setattr(self, "value", value),
            describe=lambda value: f"{len(value)} bytes",
        )


def test_a_changed_file_is_applied_and_a_bad_one_keeps_the_last_good(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="registry_service.security.credential_files")
    path = tmp_path / "credential"
    path.write_text("one")
    credential = Loaded(path)
    outcomes: list[tuple[str, bool]] = []
    files = CredentialFiles(lambda key, applied: outcomes.append((key, applied)))
    files.watch(credential.reloadable())

    files.check()  # nothing changed: nothing read
    assert outcomes == [] and caplog.records == []

    replace(path, "two!")
    files.check()
    files.check()  # read once per change
    assert credential.value == "two!"
    replace(path, "bad")
    files.check()
    assert credential.value == "two!"
    path.unlink()  # a file gone is a change that cannot be used either
    files.check()
    assert credential.value == "two!"
    assert outcomes == [("test", True), ("test", False), ("test", False)]
    assert [r.getMessage() for r in caplog.records] == [
        f"reloaded the test file from {path} (test_file): 4 bytes",
        "the test file changed but cannot be used; kept the one in use (test_file): "
        f"{path}: bad second line",
        "the test file changed but cannot be used; kept the one in use (test_file): "
        f"[Errno 2] No such file or directory: '{path}'",
    ]
    assert [r.levelname for r in caplog.records] == ["INFO", "WARNING", "WARNING"]


def test_a_set_of_unset_files_is_not_watched(tmp_path):
    loaded: list[object] = []
    reloads: list[tuple[str, bool]] = []
    files = CredentialFiles(observe=lambda key, applied: reloads.append((key, applied)))
    files.watch(
        Reloadable("none", "nothing", (("a_file", ""),), load=loaded.append, apply=loaded.append)
    )
    files.check()  # nothing to stat, nothing to load or apply
    assert (loaded, reloads) == ([], [])


def test_the_expiry_of_a_file_is_its_earliest_certificates(tmp_path):
    authority = trustme.CA()
    soon = datetime.datetime(2031, 1, 1)
    leaf = authority.issue_cert("a.example", not_after=soon)
    chain = tmp_path / "chain.pem"
    chain.write_bytes(
        b"".join(blob.bytes() for blob in leaf.cert_chain_pems) + authority.cert_pem.bytes()
    )
    assert file_validity(str(chain)).not_after == soon.replace(tzinfo=datetime.UTC)
    expiry = CertificateExpiry()
    expiry.record("tls_cert_file", str(chain))
    expiry.record("broken_file", str(tmp_path / "missing.pem"))
    left = expiry.seconds_left()
    assert set(left) == {"tls_cert_file"}
    expected = soon.replace(tzinfo=datetime.UTC) - datetime.datetime.now(datetime.UTC)
    assert abs(left["tls_cert_file"] - expected.total_seconds()) < 60


def test_an_expired_certificate_is_a_problem_and_an_unreadable_one_is_not_judged(tmp_path):
    authority = trustme.CA()
    past = datetime.datetime(2020, 1, 2, 3, 4, 5)
    expired = tmp_path / "expired.pem"
    expired.write_bytes(
        authority.issue_cert("a", not_before=past, not_after=past).cert_chain_pems[0].bytes()
    )
    assert expiry_problem(str(expired)) == "expired on 2020-01-02 03:04:05Z"
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate")
    assert expiry_problem(str(garbage)) == ""
    with pytest.raises(CertificateFormatError):
        file_validity(str(garbage))
