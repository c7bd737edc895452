"""The sidecar (docs/design.md §13): `noderegistry register ... --check URL` registers a
service of any language, checks it beside it and reports its health through the registration.
The installed command as a child process, a real frontend and etcd, a gRPC health server on
loopback standing for the service."""

from __future__ import annotations

import json

import pytest

from client_sdk import Health, NodeList, RegistryClient, Scope
from tests.support.cli import interrupt, read_line, run_cli, running_cli
from tests.support.health_servers import GrpcHealthServer
from tests.support.ports import free_port
from tests.support.sdk import FAST

pytestmark = pytest.mark.integration

INTERVAL = 0.3
FAILURES = 2
PASSES = 2
CHECK_OPTIONS = (
    "--check-interval",
    str(INTERVAL),
    "--check-timeout",
    "0.2",
    "--check-failures",
    str(FAILURES),
    "--check-passes",
    str(PASSES),
)


def _web_1(nodes: NodeList) -> tuple[Health, str] | None:
    return next(((n.health, n.status.value) for n in nodes if n.id == "web-1"), None)


async def test_the_sidecar_turns_the_node_failing_when_its_service_stops_serving(start_frontend):
    service = await GrpcHealthServer().start()
    await service.set("", True)
    frontend = await start_frontend()
    args = (
        *("register", "--id", "web-1", "--type", "web", "--datacenter", "dc1"),
        *("--address", f"127.0.0.1:{service.port}"),
        *("--check", f"grpc://127.0.0.1:{service.port}", *CHECK_OPTIONS),
    )
    env = {"NODEREGISTRY_ENDPOINTS": frontend.address}
    async with (
        running_cli(*args, env=env) as sidecar,
        RegistryClient(frontend.address, config=FAST) as client,
    ):
        registered = await read_line(sidecar)
        assert registered.startswith("registered dc1/web/web-1 at 127.0.0.1:"), registered
        assert "health PASSING" in registered
        said = f"grpc://127.0.0.1:{service.port}: SERVING"
        assert await read_line(sidecar) == f"health PASSING ({said})"
        watch = await client.watch_nodes(Scope.of(types="web"))
        assert _web_1(watch.current()) == (Health.PASSING, "UP")

        # 1. The service's health server goes away: FAILING, and still listed (still renewed).
        await service.stop()
        await watch.wait_for(
            lambda nodes: _web_1(nodes) == (Health.FAILING, "UP"),
            timeout=INTERVAL * FAILURES + 1,
        )
        assert (await read_line(sidecar)).startswith("health FAILING (grpc://127.0.0.1:")
        assert len(await client.get_nodes(Scope.of(types="web", healthy_only=True))) == 0

        # 2. It comes back: PASSING again after the passing threshold.
        await service.start()
        await watch.wait_for(lambda nodes: _web_1(nodes) == (Health.PASSING, "UP"), timeout=5)
        assert await read_line(sidecar) == f"health PASSING ({said})"
        code, out, _ = await interrupt(sidecar)
        assert code == 0 and out.rstrip().endswith("deregistered dc1/web/web-1")
    await service.stop()


async def test_the_sidecar_speaks_json_and_starts_failing_when_the_service_is_not_up_yet(
    start_frontend,
):
    port = free_port()  # nothing listens there yet
    frontend = await start_frontend()
    async with running_cli(
        *("register", "--id", "web-2", "--type", "web", "--datacenter", "dc1"),
        *("--address", "127.0.0.1:7000", "-o", "json"),
        *("--check", f"tcp://127.0.0.1:{port}", *CHECK_OPTIONS),
        env={"NODEREGISTRY_ENDPOINTS": frontend.address},
    ) as sidecar:
        registered = json.loads(await read_line(sidecar))
        assert registered["type"] == "REGISTERED" and registered["node"]["health"] == "FAILING"
        health = json.loads(await read_line(sidecar))
        assert health["type"] == "HEALTH" and health["health"] == "FAILING"
        assert health["output"].startswith(f"tcp://127.0.0.1:{port}: connection failed")
        await interrupt(sidecar)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (("--check", "ftp://127.0.0.1:21"), "a check is grpc://host:port[/service]"),
        (("--check", "grpc://127.0.0.1"), "give the host and the port"),
        (("--check", "tcp://127.0.0.1:80/x"), "a TCP check takes no path"),
        (("--check", "tcp://127.0.0.1:80", "--detach"), "cannot go with --detach"),
        (
            ("--check", "tcp://127.0.0.1:80", "--check-timeout", "9"),
            "must not be longer than the interval",
        ),
    ],
)
async def test_a_bad_check_is_a_usage_error_before_anything_registers(flags, message):
    code, _, err = await run_cli(
        *("register", "--id", "x", "--type", "web", "--datacenter", "dc1"),
        *("--address", "127.0.0.1:7000", *flags),
        env={"NODEREGISTRY_ENDPOINTS": "127.0.0.1:1"},
    )
    assert code == 2 and message in err, err
