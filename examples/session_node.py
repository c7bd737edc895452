"""A session node: keeps a live list of data nodes and picks one for each request.

    python examples/session_node.py [--target 127.0.0.1:50051] [--requests 20]

It never asks the registry per request: the NodeWatch keeps the list current, and the SDK's
Picker chooses locally among the data nodes that are available: UP. DRAINING nodes (leaving),
OUT_OF_SERVICE ones (an operator's maintenance) and SUSPECT ones (silent) get no new work. Nodes
of its own zone (`--zone`, metadata `zone`) come first, each chosen in proportion to its metadata
`weight`, as a gRPC client reading the same list over xDS would.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib

from client_sdk import Node, Picker, RegistryClient, Scope


async def main(args: argparse.Namespace) -> None:
    metadata = {"zone": args.zone} if args.zone else {}
    node = Node(args.id, "session", args.datacenter, args.address, metadata)
    async with (
        RegistryClient(args.target) as client,
        await client.register(node, ttl_seconds=10),  # deregistered on the way out
        await client.watch_nodes(Scope.of(types="data")) as data_nodes,
    ):
        picker = Picker(data_nodes.current, zone=args.zone, datacenter=args.datacenter)
        for request in range(args.requests):
            chosen = picker.pick()
            target = f"{chosen.id} at {chosen.address}" if chosen else "nobody (no data node is UP)"
            stale = " (list held back: stale)" if data_nodes.stale else ""
            print(f"request {request}: {target}{stale}", flush=True)
            await asyncio.sleep(args.interval)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--target", default="127.0.0.1:50051")
    parser.add_argument("--id", default="session-1")
    parser.add_argument("--datacenter", default="dc1")
    parser.add_argument("--address", default="127.0.0.1:9700")
    parser.add_argument("--zone", default="", help="prefer data nodes of this zone")
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--interval", type=float, default=0.5, help="seconds between requests")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main(parser.parse_args()))
