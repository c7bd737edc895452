"""The tokens file as an operator lives with it: a missing token is told apart from a wrong one
(without saying which tokens exist), and a token added to or removed from the file takes effect
without a restart; a file that cannot be used keeps the tokens in use and says why."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import grpc
import grpc.aio
import pytest
from noderegistry.v1 import registry_pb2 as pb
from noderegistry.v1 import registry_pb2_grpc

from registry_service.app import Frontend
from tests.support.api import key_of, node
from tests.support.cli import run_cli
from tests.support.http_api import api_url, get
from tests.support.waiting import eventually, next_message

pytestmark = pytest.mark.integration

RELOADS = "registry_service.security.credential_files"


def replace_file(path: Path, text: str) -> None:
    """Writes the file whole in one rename, as a deployment tool (or a Secret volume) does."""
    staged = path.with_suffix(".new")
    staged.write_text(text)
    os.replace(staged, path)


async def get_nodes_code(address: str, token: str) -> grpc.StatusCode:
    metadata = (("authorization", f"Bearer {token}"),) if token else ()
    async with grpc.aio.insecure_channel(address) as channel:
        try:
            await registry_pb2_grpc.RegistryStub(channel).GetNodes(
                pb.GetNodesRequest(), metadata=metadata
            )
        except grpc.aio.AioRpcError as err:
            return err.code()
    return grpc.StatusCode.OK


async def test_a_missing_token_and_an_unknown_one_get_different_answers(tmp_path, start_frontend):
    tokens = tmp_path / "tokens"
    tokens.write_text("fleet register,watch fleet-secret\n")
    frontend: Frontend = await start_frontend(auth_tokens_file=str(tokens))
    async with grpc.aio.insecure_channel(frontend.address) as channel:
        stub = registry_pb2_grpc.RegistryStub(channel)
        answers = {}
        for name, metadata in (("missing", ()), ("wrong", (("authorization", "Bearer guess"),))):
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await stub.GetNodes(pb.GetNodesRequest(), metadata=metadata)
            assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
            answers[name] = caught.value.details()
    assert answers == {
        "missing": "no token: this registry requires a bearer token: send 'authorization: "
        "Bearer <token>'",
        "wrong": "unknown token: the bearer token sent is not one this registry knows "
        "(mistyped, removed from its tokens file, or another cluster's)",
    }

    api = api_url(frontend)
    missing = await get(f"{api}/v1/nodes")
    wrong = await get(f"{api}/v1/nodes", "guess")
    assert (missing.status, wrong.status) == (401, 401)
    assert missing.body["error"]["message"] == (
        "no token: /v1/nodes needs Authorization: Bearer <token> (a token with the 'watch' "
        "scope, or the admin token)"
    )
    assert missing.headers["WWW-Authenticate"] == 'Bearer realm="node-registry"'
    assert wrong.body["error"]["message"] == answers["wrong"]
    assert wrong.headers["WWW-Authenticate"] == (
        'Bearer realm="node-registry", error="invalid_token", error_description="unknown token"'
    )
    for answer in (*answers.values(), str(missing.body), str(wrong.body)):
        assert "fleet" not in answer  # nothing says which tokens exist

    code, _, err = await run_cli("nodes", "--endpoints", frontend.address, "--token", "guess")
    assert code == 1
    assert err == (
        f"error: UNAUTHENTICATED: {answers['wrong']} (check the token given with --token-file, "
        "--token or NODEREGISTRY_TOKEN: this registry's tokens file does not hold it)\n"
    )


async def test_tokens_added_and_removed_take_effect_without_a_restart(
    tmp_path, start_frontend, caplog
):
    caplog.set_level(logging.INFO, logger=RELOADS)
    tokens = tmp_path / "tokens"
    tokens.write_text("fleet register,watch fleet-secret\n")
    frontend: Frontend = await start_frontend(
        auth_tokens_file=str(tokens), credentials_reload_seconds=0.1
    )
    address = frontend.address
    assert await get_nodes_code(address, "late-secret") == grpc.StatusCode.UNAUTHENTICATED

    # 1. A token added to the file works, on the gRPC port and the HTTP API.
    replace_file(tokens, "fleet register,watch fleet-secret\nlate watch late-secret\n")

    async def late_works() -> bool:
        return await get_nodes_code(address, "late-secret") == grpc.StatusCode.OK

    await eventually(late_works, message="the added token works")
    assert (await get(f"{api_url(frontend)}/v1/nodes", "late-secret")).status == 200

    # 2. A token removed from the file is refused from the next call, and from the next
    #    renewal of a KeepAlive stream opened with it.
    fleet = (("authorization", "Bearer fleet-secret"),)
    async with grpc.aio.insecure_channel(address) as channel:
        stub = registry_pb2_grpc.RegistryStub(channel)
        registered = await stub.Register(
            pb.RegisterRequest(node=node("k1"), ttl_seconds=30), metadata=fleet
        )
        renewal = pb.KeepAliveRequest(key=key_of(registered.node), token=registered.token)
        stream = stub.KeepAlive(metadata=fleet)
        await stream.write(renewal)
        assert (await next_message(stream)).code == 0
        replace_file(tokens, "late watch late-secret\n")

        async def fleet_refused() -> bool:
            return await get_nodes_code(address, "fleet-secret") == (
                grpc.StatusCode.UNAUTHENTICATED
            )

        await eventually(fleet_refused, message="the removed token is refused")
        await stream.write(renewal)
        answer = await next_message(stream)
        assert answer.code == grpc.StatusCode.UNAUTHENTICATED.value[0]
        assert answer.message.startswith("unknown token")
        stream.cancel()

    # 3. A file that cannot be used keeps the tokens in use, and says why.
    replace_file(tokens, "late watch late-secret\nbad regster bad-secret\n")
    await eventually(
        lambda: any("cannot be used" in r.getMessage() for r in caplog.records),
        message="the refusal is logged",
    )
    assert await get_nodes_code(address, "late-secret") == grpc.StatusCode.OK
    reloads = [r.getMessage() for r in caplog.records if r.name == RELOADS]
    assert reloads == [
        f"reloaded the tokens file from {tokens} (auth_tokens_file): 2 tokens",
        f"reloaded the tokens file from {tokens} (auth_tokens_file): 1 token",
        "the tokens file changed but cannot be used; kept the one in use (auth_tokens_file): "
        f"{tokens}:2: unknown scope 'regster' (scopes: register, watch, xds, metrics, "
        "admin:read, admin:write, admin; each may take :dc/type)",
    ]
    sample = frontend.metrics.registry.get_sample_value
    assert (
        sample(
            "noderegistry_credential_reloads_total", {"credentials": "tokens", "result": "applied"}
        )
        == 2
    )
    assert (
        sample(
            "noderegistry_credential_reloads_total", {"credentials": "tokens", "result": "refused"}
        )
        == 1
    )
