"""xDS with `@grpc/grpc-js-xds` in Node (installed from npm by `make system-node-xds`): the
grpcio scenario scaled down. Conditions are waited on with timeouts, never timed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import grpc.aio
import pytest
from noderegistry.v1 import registry_pb2 as pb
from noderegistry.v1 import registry_pb2_grpc

from tests.support.api import key_of, register
from tests.support.waiting import eventually
from tests.support.xds_harness import Backend, Picks, start_node_client, write_bootstrap

pytestmark = pytest.mark.integration

LEAVES_WITHIN_SECONDS = 1.0


def backend_node(backend: Backend, **fields: object) -> pb.Node:
    return pb.Node(
        id=backend.name, type="data", datacenter="dc1", address=backend.address, **fields
    )  # type: ignore[arg-type]


@pytest.fixture
async def backends() -> AsyncIterator[dict[str, Backend]]:
    started = {name: await Backend(name).start() for name in ("n1", "n2", "n3", "n4")}
    yield started
    for backend in started.values():
        await backend.stop()


async def test_grpc_js_xds_follows_the_nodes_and_survives_its_frontend(
    etcd, spawn_frontend, backends, tmp_path: Path
):
    # 1. two frontend processes behind one server_uri; three nodes UP; Node spreads over them.
    first = await spawn_frontend(etcd.endpoint)
    second = await spawn_frontend(etcd.endpoint)
    bootstrap = write_bootstrap(tmp_path / "bootstrap.json", [first.address, second.address])
    async with grpc.aio.insecure_channel(second.address) as channel:
        stub = registry_pb2_grpc.RegistryStub(channel)
        registered = {
            name: await register(stub, backend_node(backends[name]), ttl=30)
            for name in ("n1", "n2", "n3")
        }
        picks: Picks = start_node_client("xds:///data", bootstrap, tmp_path / "node.log")
        try:
            await eventually(
                lambda: set(picks.recent(15) or ()) == {"n1", "n2", "n3"},
                timeout=30,
                message="picks over n1, n2, n3",
            )

            # 2. a deregistered node and a DRAINING one leave the picks.
            n1 = registered["n1"]
            mark = picks.mark()
            await stub.Deregister(pb.DeregisterRequest(key=key_of(n1.node), token=n1.token))
            await eventually(
                lambda: (r := picks.recent(10, mark)) is not None and "n1" not in r,
                timeout=LEAVES_WITHIN_SECONDS,
                message="n1 out",
            )
            mark = picks.mark()
            await register(
                stub,
                backend_node(backends["n2"], status=pb.NODE_STATUS_DRAINING),
                ttl=30,
                token=registered["n2"].token,
            )
            await eventually(
                lambda: (r := picks.recent(10, mark)) is not None and "n2" not in r,
                timeout=LEAVES_WITHIN_SECONDS,
                message="n2 out",
            )

            # 3. the frontend first in the server_uri dies; a node that joins now arrives
            # through the other one.
            first.kill()
            await register(stub, backend_node(backends["n4"]), ttl=30)
            await eventually(
                lambda: set(picks.recent(10) or ()) == {"n3", "n4"},
                timeout=30,
                message="n4 joins after the frontend died",
            )
        finally:
            picks.close()
