"""Takes the README's picture of the web console (`make console-screenshot`): a local etcd, one
frontend, example nodes in every status (a few that stop renewing beyond the eviction budget, so
that the self-preservation alarm is up), an acknowledging SDK watcher, then the console in Debian's
headless Chromium at a laptop's size, with an operator's token, one node's metadata, actions and
audit trail open.

    python -m tools.console_screenshot docs/console.png      (from the repository's root)
"""

from __future__ import annotations

import asyncio
import dataclasses
import socket
import sys
import tempfile
from pathlib import Path

import grpc.aio
from noderegistry.v1 import registry_pb2 as pb
from noderegistry.v1 import registry_pb2_grpc

from client_sdk import ClientConfig, Node, NodeStatus, RegistryClient, Scope
from registry_service.app import Frontend
from registry_service.domain import NodeKey
from registry_service.domain import NodeStatus as ServerStatus
from registry_service.process.embedded_etcd import EtcdServer
from registry_service.settings import Settings
from tests.support.browser import chromium_page
from tests.support.http_api import ONE_EVICTION_BUDGET

TOKEN = "console-screenshot-token"  # the admin token: the operator's view, actions included


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _example_nodes(frontend: Frontend, client: RegistryClient) -> list[object]:
    """Registrations kept alive while the picture is taken, and silent ones (raw Register, never
    renewed) that the eviction budget holds as SUSPECT."""
    kept: list[object] = []
    for datacenter, count in (("dc1", 4), ("dc2", 3)):
        for index in range(1, count + 1):
            address = f"10.{datacenter[-1]}.0.{index}:9600"
            metadata = {"zone": f"{datacenter}-{'abc'[index % 3]}", "shard": str(index)}
            node = Node(f"data-{index}", "data", datacenter, address, metadata)
            kept.append(await client.register(node))
    kept.append(await client.register(Node("session-1", "session", "dc1", "10.1.1.1:7000")))
    kept.append(
        await client.register(
            Node("session-2", "session", "dc1", "10.1.1.2:7000", status=NodeStatus.DRAINING)
        )
    )
    kept.append(await client.register(Node("meta-1", "meta", "dc1", "10.1.2.1:2380")))
    kept.append(await client.register(Node("meta-1", "meta", "dc2", "10.2.2.1:2380")))
    await frontend.operations.set_override(
        NodeKey("dc1", "meta", "meta-1"), ServerStatus.OUT_OF_SERVICE, "token:ops", "disk swap"
    )
    token = (("authorization", f"Bearer {TOKEN}"),)
    async with grpc.aio.insecure_channel(frontend.address) as channel:
        stub = registry_pb2_grpc.RegistryStub(channel)
        for index in range(4, 7):
            silent = pb.Node(
                id=f"data-{index}",
                type="data",
                datacenter="dc2",
                address=f"10.2.0.{index}:9600",
            )
            await stub.Register(pb.RegisterRequest(node=silent, ttl_seconds=3), metadata=token)
    for _ in range(200):
        if len(frontend.operations.suspects()) == 2:
            break
        await asyncio.sleep(0.1)
    return kept


async def main(output: Path) -> None:
    with tempfile.TemporaryDirectory() as directory:
        port = _free_port()
        etcd = EtcdServer(
            data_dir=Path(directory) / "etcd", client_port=port, peer_port=_free_port()
        )
        etcd.start()
        etcd.wait_ready()
        settings = dataclasses.replace(
            Settings(),
            listen="127.0.0.1:0",
            admin_listen="127.0.0.1:0",
            http_listen="127.0.0.1:0",
            workers=1,
            etcd_endpoints=(etcd.endpoint,),
            evictor_outage_grace_seconds=0.0,
            watch_progress_seconds=1.0,
            admin_token=TOKEN,
            **ONE_EVICTION_BUDGET,
        )
        frontend = Frontend(settings)
        await frontend.start()
        try:
            config = ClientConfig(bearer_token=TOKEN)
            async with RegistryClient(frontend.address, config=config) as client:
                await _example_nodes(frontend, client)
                watch = await client.watch_nodes(Scope.of(types="data"))  # acknowledges
                assert frontend.api is not None
                base = f"http://127.0.0.1:{frontend.api.port}"
                async with chromium_page() as page:
                    await page.goto(f"{base}/ui/")
                    await page.fill("#token", TOKEN)
                    await page.click("#token-form button[type=submit]")
                    await page.locator("#alarm").wait_for(state="visible", timeout=20_000)
                    await page.locator('[data-node="dc1/data/data-2"]').click()
                    await page.locator("[data-audit-node]").wait_for(timeout=10_000)
                    await page.get_by_text("acknowledging subscriber").wait_for(timeout=10_000)
                    await page.locator("[data-frontend]").first.wait_for(timeout=10_000)
                    await page.screenshot(path=str(output), full_page=True)
                await watch.close()
        finally:
            await frontend.stop()
            etcd.stop()
    print(f"wrote {output}")


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/console.png")))
