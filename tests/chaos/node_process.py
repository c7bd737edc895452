"""One node as its own process (so that a test can SIGSTOP it): registers through the SDK and
prints one line per registration it holds: `registered <incarnation>`."""

from __future__ import annotations

import asyncio
import sys

from client_sdk import ClientConfig, Node, RegistryClient


async def main(targets: list[str], node_id: str) -> None:
    config = ClientConfig(call_timeout_seconds=2, retry_initial_seconds=0.05, retry_max_seconds=0.5)
    async with RegistryClient(targets, config=config) as client:

        def reregistered(registration: object) -> None:
            print(f"registered {registration.incarnation}", flush=True)  # type: ignore[attr-defined]

        registration = await client.register(
            Node(id=node_id, type="data", datacenter="dc1", address="10.1.1.1:7000"),
            ttl_seconds=3,
            on_reregistered=reregistered,
        )
        print(f"registered {registration.incarnation}", flush=True)
        await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[2:], sys.argv[1]))
