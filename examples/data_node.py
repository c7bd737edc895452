"""A data node: registers itself, stays registered, and keeps a live list of session nodes.

    python examples/data_node.py --id data-1 --address 127.0.0.1:9600 [--target 127.0.0.1:50051]

Ctrl-C (or --seconds) deregisters it: session nodes see it leave at once.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys

from client_sdk import (
    EventStream,
    EventType,
    Node,
    Registration,
    RegistryClient,
    RegistryRPCError,
    Scope,
    StatusCode,
)


async def main(args: argparse.Namespace) -> int:
    node = Node(args.id, "data", args.datacenter, args.address, {"shard": args.shard})
    async with RegistryClient(args.target) as client:
        try:
            registration = await client.register(
                node,
                ttl_seconds=10,
                on_reregistered=lambda r: print(f"re-registered as incarnation {r.incarnation}"),
            )
        except RegistryRPCError as err:
            hint = " (pick another --id)" if err.code is StatusCode.ALREADY_EXISTS else ""
            print(f"error: {err}{hint}", file=sys.stderr)
            return 1
        async with registration:  # deregisters on the way out
            incarnation = registration.incarnation
            print(f"registered {registration.key} (incarnation {incarnation})", flush=True)
            async with await client.watch_nodes(Scope.of(types="session")) as sessions:
                print(f"session nodes now: {[n.id for n in sessions.current()]}", flush=True)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(args.seconds):
                        await follow(sessions.events(), registration)
    print("deregistered", flush=True)
    return 0


async def follow(events: EventStream, registration: Registration) -> None:
    async for event in events:
        verb = {EventType.ADDED: "joined", EventType.UPDATED: "changed", EventType.REMOVED: "left"}
        print(
            f"session {event.node.id} {verb[event.type]} (registration {registration.state.value})",
            flush=True,
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--target", default="127.0.0.1:50051")
    parser.add_argument("--id", default="data-1")
    parser.add_argument("--datacenter", default="dc1")
    parser.add_argument("--address", default="127.0.0.1:9600")
    parser.add_argument("--shard", default="0")
    parser.add_argument("--seconds", type=float, default=None, help="stop after this long")
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(asyncio.run(main(parser.parse_args())))
