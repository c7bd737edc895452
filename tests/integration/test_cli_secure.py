"""The installed `noderegistry` command against a frontend that requires mTLS and bearer tokens:
every client verb reaches it with flags or NODEREGISTRY_* variables, and a missing piece is one
error line that says what to give."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from client_sdk import ClientConfig, Node, RegistryClient
from tests.support.certs import tls_flags, write_certificates
from tests.support.cli import interrupt, read_line, run_cli, running_cli

pytestmark = pytest.mark.integration

TOKENS = {"fleet": "fleet-secret-1", "viewer": "viewer-secret-2"}
NODE_ARGS = ("--type", "data", "--datacenter", "dc1", "--address", "10.2.2.2:80")


@pytest.fixture
async def secure(tmp_path: Path, start_frontend):
    """A frontend with mTLS and tokens; returns (frontend, certificate files, token file)."""
    _, files = write_certificates(tmp_path, ("127.0.0.1",), "cli-user")
    tokens = tmp_path / "tokens"
    tokens.write_text(f"fleet register,watch {TOKENS['fleet']}\nviewer watch {TOKENS['viewer']}\n")
    frontend = await start_frontend(
        tls_cert_file=files["server.pem"],
        tls_key_file=files["server-key.pem"],
        tls_client_ca_file=files["ca.pem"],
        auth_tokens_file=str(tokens),
    )
    token_file = tmp_path / "fleet.token"
    token_file.write_text(TOKENS["fleet"] + "\n")
    return frontend, files, token_file


def tls_variables(frontend_address: str, files: dict[str, str]) -> dict[str, str]:
    return {
        "NODEREGISTRY_ENDPOINTS": frontend_address,
        "NODEREGISTRY_CACERT": files["ca.pem"],
        "NODEREGISTRY_CERT": files["client.pem"],
        "NODEREGISTRY_KEY": files["client-key.pem"],
    }


async def test_every_client_verb_reaches_a_frontend_with_mtls_and_a_token(secure):
    frontend, files, token_file = secure
    flags = ("--endpoints", frontend.address, *tls_flags(files), "--token-file", str(token_file))
    variables = {**tls_variables(frontend.address, files), "NODEREGISTRY_TOKEN": TOKENS["fleet"]}

    # register, with flags
    async with running_cli("register", *flags, "--id", "sec1", *NODE_ARGS) as registering:
        assert (await read_line(registering)).startswith("registered dc1/data/sec1 ")

        # nodes, table and JSON, with variables only
        code, out, err = await run_cli("nodes", env=variables)
        assert code == 0, err
        assert out.splitlines()[1].split()[:3] == ["dc1", "data", "sec1"]
        code, out, err = await run_cli("nodes", env={**variables, "NODEREGISTRY_OUTPUT": "json"})
        assert code == 0, err
        assert [n["id"] for n in json.loads(out)["datacenters"]["dc1"]["nodes"]] == ["sec1"]

        # watch, until an event: a node the SDK registers (over mTLS, with the fleet token)
        async with running_cli("watch", "-o", "json", env=variables) as watching:
            assert json.loads(await read_line(watching))["node"]["id"] == "sec1"
            config = ClientConfig(
                tls_ca_file=files["ca.pem"],
                tls_cert_file=files["client.pem"],
                tls_key_file=files["client-key.pem"],
                bearer_token=TOKENS["fleet"],
            )
            async with RegistryClient(frontend.address, config=config) as sdk:
                await sdk.register(Node("sec2", "data", "dc1", "10.2.2.3:80"))
                event = json.loads(await read_line(watching))
                assert (event["type"], event["node"]["id"]) == ("ADDED", "sec2")
            code, _, _ = await interrupt(watching)
            assert code == 0

        # health, over the same TLS (the token is not needed, and does no harm)
        code, out, err = await run_cli("health", *flags)
        assert (code, out.strip()) == (0, f"{frontend.address} SERVING"), err

        code, out, err = await interrupt(registering)
    assert code == 0, err
    assert out.splitlines()[-1] == "deregistered dc1/data/sec1"


async def test_a_missing_token_or_scope_is_one_line_that_says_what_to_give(secure):
    frontend, files, _ = secure
    variables = tls_variables(frontend.address, files)
    for verb in (("nodes",), ("watch",), ("register", "--id", "sec3", *NODE_ARGS)):
        code, out, err = await run_cli(*verb, env=variables)
        assert (code, out) == (1, ""), (verb, err)
        assert err == (
            "error: UNAUTHENTICATED: no token: this registry requires a bearer token: send "
            "'authorization: Bearer <token>' (give a token with --token-file, --token or "
            "NODEREGISTRY_TOKEN)\n"
        ), verb

    viewer = {**variables, "NODEREGISTRY_TOKEN": TOKENS["viewer"]}
    code, _, err = await run_cli("register", "--id", "sec3", *NODE_ARGS, env=viewer)
    assert code == 1
    assert err.startswith("error: PERMISSION_DENIED: token 'viewer' lacks the 'register' scope")
    assert len(err.splitlines()) == 1


async def test_without_the_client_certificate_or_tls_the_call_fails_in_one_line(secure):
    frontend, files, token_file = secure
    token = ("--token-file", str(token_file), "--timeout", "3")
    for tls in ((), ("--cacert", files["ca.pem"])):
        code, out, err = await run_cli("nodes", "--endpoints", frontend.address, *tls, *token)
        assert (code, out) == (1, ""), err
        assert err.startswith("error: UNAVAILABLE: ") and len(err.splitlines()) == 1
        code, out, err = await run_cli("health", "--endpoints", frontend.address, *tls, *token)
        assert (code, out) == (1, "")
        assert err.startswith(f"error: cannot check {frontend.address}: UNAVAILABLE")
