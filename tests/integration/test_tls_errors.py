"""A TLS problem, met through the CLI and the SDK, is one line that names it and what to change:
an expired certificate on either side, one the CA did not sign, a client certificate required,
a certificate and a key that do not belong together, TLS on one side only (issue 26). Before,
each was "Socket closed (check --endpoints ...)", or grpc's own lines about an invalid key."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest
import trustme

from client_sdk import ClientConfig, InvalidArgumentError, RegistryClient, TlsError
from tests.support.certs import write_certificates
from tests.support.cli import run_cli

pytestmark = pytest.mark.integration

PAST = datetime.datetime(2020, 1, 1), datetime.datetime(2021, 1, 1)


def expired_pair(authority: trustme.CA, directory: Path, name: str) -> tuple[str, str]:
    """A certificate `authority` signed that expired on 2021-01-01, and its key."""
    issued = authority.issue_cert(name, not_before=PAST[0], not_after=PAST[1])
    cert, key = directory / f"{name}-expired.pem", directory / f"{name}-expired-key.pem"
    issued.cert_chain_pems[0].write_to_path(str(cert))
    issued.private_key_pem.write_to_path(str(key))
    return str(cert), str(key)


@pytest.fixture
def certificates(tmp_path: Path) -> tuple[trustme.CA, dict[str, str]]:
    return write_certificates(tmp_path, ("127.0.0.1",), "cli-user")


async def nodes(*flags: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    return await run_cli("nodes", "--timeout", "3", *flags, env=env)


def assert_one_error_line(result: tuple[int, str, str], *parts: str, code: int = 1) -> str:
    status, out, err = result
    assert (status, out) == (code, ""), err
    assert err.count("\n") == 1 and err.startswith("error: "), err
    assert "Socket closed" not in err and "check --endpoints" not in err, err
    for part in parts:
        assert part in err, err
    return err


async def test_a_client_certificate_required_missing_or_expired_is_named(
    start_frontend, certificates, tmp_path
):
    authority, files = certificates
    frontend = await start_frontend(
        tls_cert_file=files["server.pem"],
        tls_key_file=files["server-key.pem"],
        tls_client_ca_file=files["ca.pem"],
    )
    endpoint = ("--endpoints", frontend.address, "--cacert", files["ca.pem"])
    assert_one_error_line(
        await nodes(*endpoint),
        f"frontend {frontend.address} requires a client certificate (mTLS)",
        "(--cert and --key, or NODEREGISTRY_CERT and NODEREGISTRY_KEY)",
    )
    cert, key = expired_pair(authority, tmp_path, "old-client")
    assert_one_error_line(
        await nodes(*endpoint, "--cert", cert, "--key", key),
        f"refused the client certificate {cert}: it expired on 2021-01-01 00:00:00Z",
    )
    stranger = trustme.CA().issue_cert("stranger")
    stranger.cert_chain_pems[0].write_to_path(str(tmp_path / "stranger.pem"))
    stranger.private_key_pem.write_to_path(str(tmp_path / "stranger-key.pem"))
    assert_one_error_line(
        await nodes(
            *endpoint, "--cert", str(tmp_path / "stranger.pem"),
            "--key", str(tmp_path / "stranger-key.pem"),
        ),
        "is not signed by a CA the frontend trusts for clients",
    )  # fmt: skip
    status, _, err = await nodes(
        *endpoint, "--cert", files["client.pem"], "--key", files["client-key.pem"]
    )
    assert status == 0, err


async def test_a_server_certificate_expired_or_signed_by_another_ca_is_named(
    start_frontend, certificates, tmp_path
):
    authority, files = certificates
    cert, key = expired_pair(authority, tmp_path, "127.0.0.1")
    expired = await start_frontend(tls_cert_file=cert, tls_key_file=key)
    assert_one_error_line(
        await nodes("--endpoints", expired.address, "--cacert", files["ca.pem"]),
        f"the certificate of frontend {expired.address} has expired",
        "REGISTRY_TLS_CERT_FILE on the frontend",
    )
    other = trustme.CA()
    other.cert_pem.write_to_path(str(tmp_path / "other-ca.pem"))
    signed = await start_frontend(
        tls_cert_file=files["server.pem"], tls_key_file=files["server-key.pem"]
    )
    assert_one_error_line(
        await nodes("--endpoints", signed.address, "--cacert", str(tmp_path / "other-ca.pem")),
        f"the certificate of frontend {signed.address} is not signed by a CA of tls_ca_file",
        "(--cacert or NODEREGISTRY_CACERT;",
    )


async def test_tls_on_one_side_only_is_named_and_plaintext_turns_it_off_for_one_call(
    start_frontend, certificates
):
    _, files = certificates
    plaintext = await start_frontend()
    variables = {"NODEREGISTRY_CACERT": files["ca.pem"]}
    assert_one_error_line(
        await nodes("--endpoints", plaintext.address, env=variables),
        f"frontend {plaintext.address} does not speak TLS (it is plaintext)",
        "--plaintext for a frontend without TLS",
    )
    status, out, err = await nodes("--endpoints", plaintext.address, "--plaintext", env=variables)
    assert status == 0 and out.startswith("DATACENTER"), err
    secured = await start_frontend(
        tls_cert_file=files["server.pem"], tls_key_file=files["server-key.pem"]
    )
    assert_one_error_line(
        await nodes("--endpoints", secured.address),
        f"frontend {secured.address} speaks TLS and this client does not",
    )


async def test_a_certificate_and_a_key_that_do_not_belong_together_are_one_usage_line(
    certificates,
):
    _, files = certificates
    result = await nodes(
        "--endpoints", "127.0.0.1:1", "--cacert", files["ca.pem"],
        "--cert", files["client.pem"], "--key", files["server-key.pem"],
    )  # fmt: skip
    err = assert_one_error_line(result, "(key values mismatch)", code=2)
    assert "Invalid private key" not in err


async def test_the_sdk_raises_tls_errors_naming_the_config_field(start_frontend, certificates):
    _, files = certificates
    frontend = await start_frontend(
        tls_cert_file=files["server.pem"],
        tls_key_file=files["server-key.pem"],
        tls_client_ca_file=files["ca.pem"],
    )
    config = ClientConfig(tls_ca_file=files["ca.pem"], call_timeout_seconds=3)
    async with RegistryClient(frontend.address, config=config) as client:
        with pytest.raises(TlsError) as raised:
            await client.get_nodes()
        with pytest.raises(TlsError):
            await client.watch_nodes()
    assert raised.value.setting == "tls_cert_file"
    assert "requires a client certificate (mTLS)" in raised.value.message
    mismatched = ClientConfig(
        tls_ca_file=files["ca.pem"],
        tls_cert_file=files["client.pem"],
        tls_key_file=files["server-key.pem"],
    )
    with pytest.raises(InvalidArgumentError, match="key values mismatch"):
        RegistryClient(frontend.address, config=mismatched)


async def test_serve_refuses_an_expired_certificate_at_start_in_one_line(certificates, tmp_path):
    authority, _ = certificates
    cert, key = expired_pair(authority, tmp_path, "127.0.0.1")
    code, out, err = await run_cli(
        "serve", f"--tls-cert-file={cert}", f"--tls-key-file={key}",
        "--etcd-endpoints=127.0.0.1:1", "--workers=1", "--admin-listen=127.0.0.1:0",
        "--http-listen=127.0.0.1:0", "--listen=127.0.0.1:0",
    )  # fmt: skip
    assert (code, out) == (1, "")
    assert err == (
        f"error: the certificate in {cert} expired on 2021-01-01 00:00:00Z: set "
        "REGISTRY_TLS_CERT_FILE and REGISTRY_TLS_KEY_FILE to a current certificate and its key\n"
    )


def broken_certificate(source: str, path: Path, cut: str) -> Path:
    """Garbage between PEM markers, or the first half of a real certificate file."""
    if cut == "garbage":
        path.write_text("-----BEGIN CERTIFICATE-----\nMAIwAA==\n-----END CERTIFICATE-----\n")
    else:
        pem = Path(source).read_text()
        path.write_text(pem[: len(pem) // 2] + "\n-----END CERTIFICATE-----\n")
    return path


@pytest.mark.parametrize("cut", ["garbage", "truncated"])
async def test_serve_refuses_a_truncated_or_garbage_certificate_in_one_line(
    certificates, tmp_path, cut
):
    _, files = certificates
    broken = broken_certificate(files["server.pem"], tmp_path / f"{cut}.pem", cut)
    code, out, err = await run_cli(
        "serve", f"--tls-cert-file={broken}", f"--tls-key-file={files['server-key.pem']}",
        "--etcd-endpoints=127.0.0.1:1", "--workers=1", "--admin-listen=127.0.0.1:0",
        "--http-listen=127.0.0.1:0", "--listen=127.0.0.1:0",
    )  # fmt: skip
    assert (code, out) == (1, ""), err
    assert err.count("\n") == 1 and err.startswith("error: "), err
    assert "REGISTRY_TLS_CERT_FILE" in err and str(broken) in err, err
