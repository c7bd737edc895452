"""A client process of an SDK fleet, for the overload test: it registers COUNT nodes with one
RegistryClient (IN_FLIGHT at a time), prints one JSON line when they are all registered, then
keeps them renewing and answers `report` on stdin with a JSON line of how they fare.

    python -m tests.chaos.fleet_process TARGETS PREFIX COUNT IN_FLIGHT TTL

A process of its own, so that a burst of Registers and the renewals of the held nodes do not
share an event loop with each other or with the test.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

from client_sdk import ClientConfig, Node, Registration, RegistrationState, RegistryClient

CONFIG = ClientConfig(call_timeout_seconds=5, retry_initial_seconds=0.05, retry_max_seconds=0.5)


async def main(targets: str, prefix: str, count: int, in_flight: int, ttl: int) -> None:
    async with RegistryClient(targets, config=CONFIG) as client:
        registrations: list[Registration] = []
        names = iter(range(count))
        started = time.monotonic()

        async def register() -> None:
            for i in names:
                node = Node(id=f"{prefix}{i}", type="data", datacenter="dc1", address="10.2.0.1:1")
                registrations.append(await client.register(node, ttl_seconds=ttl))

        await asyncio.gather(*(register() for _ in range(in_flight)))
        print(
            json.dumps({"registered": len(registrations), "seconds": time.monotonic() - started}),
            flush=True,
        )
        loop = asyncio.get_running_loop()
        while line := await loop.run_in_executor(None, sys.stdin.readline):
            if line.strip() == "report":
                states = [r.state for r in registrations]
                print(
                    json.dumps(
                        {
                            "active": states.count(RegistrationState.ACTIVE),
                            "not_active": len(states) - states.count(RegistrationState.ACTIVE),
                            "reregistrations": sum(r.reregistrations for r in registrations),
                            "incarnations_above_1": sum(r.incarnation > 1 for r in registrations),
                        }
                    ),
                    flush=True,
                )


if __name__ == "__main__":
    targets, prefix, count, in_flight, ttl = sys.argv[1:6]
    asyncio.run(main(targets, prefix, int(count), int(in_flight), int(ttl)))
