"""`noderegistry`: one command for operators and scripts.

Exit codes: 0 success; 1 the registry answered with an error or could not be reached (the message
says which and what to do); 2 bad command line; 130 interrupted before finishing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
from collections.abc import Sequence
from typing import Any

import grpc
import grpc.aio

from client_sdk import (
    Consistency,
    EventType,
    Node,
    NodeEvent,
    NodeList,
    RegistryClient,
    RegistryError,
    Scope,
    __version__,
)
from registry_service.cli import SERVER_EXTRA_HINT, add_serve_arguments, run_serve

DEFAULT_TARGET = "127.0.0.1:50051"


def _node_json(node: Node) -> dict[str, Any]:
    return {
        "datacenter": node.datacenter,
        "type": node.type,
        "id": node.id,
        "address": node.address,
        "status": node.status.value,
        "incarnation": node.incarnation,
        "metadata": dict(node.metadata),
    }


def _metadata_text(node: Node) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(node.metadata.items())) or "-"


def format_table(nodes: NodeList) -> str:
    header = ("DATACENTER", "TYPE", "ID", "ADDRESS", "STATUS", "INCARNATION", "METADATA")
    rows = [header] + [
        (
            n.datacenter,
            n.type,
            n.id,
            n.address,
            n.status.value,
            str(n.incarnation),
            _metadata_text(n),
        )
        for n in nodes
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
    lines.append(f"{len(nodes)} node(s) at revision {nodes.revision}")
    return "\n".join(lines)


def format_event(event: NodeEvent) -> str:
    node = event.node
    text = (
        f"{event.revision} {event.type.value} {node.key} {node.address} "
        f"incarnation={node.incarnation} status={node.status.value}"
    )
    if event.type is EventType.REMOVED:
        text += f" reason={event.reason.value}"
    return text


def _event_json(event: NodeEvent) -> str:
    data: dict[str, Any] = {
        "revision": event.revision,
        "type": event.type.value,
        "node": _node_json(event.node),
    }
    if event.type is EventType.REMOVED:
        data["reason"] = event.reason.value
    return json.dumps(data, sort_keys=True)


def _scope(args: argparse.Namespace) -> Scope:
    return Scope(frozenset(args.datacenter or ()), frozenset(args.type or ()))


def _metadata(pairs: Sequence[str]) -> dict[str, str]:
    metadata = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise SystemExit(f"error: --metadata takes key=value, not {pair!r}")
        metadata[key] = value
    return metadata


async def _until_signal() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()


async def cmd_register(args: argparse.Namespace) -> int:
    node = Node(args.id, args.type, args.datacenter, args.address, _metadata(args.metadata))
    async with RegistryClient(args.target) as client:
        registration = await client.register(node, ttl_seconds=args.ttl)
        print(
            f"registered {registration.key} at {registration.node.address} "
            f"(incarnation {registration.incarnation}, TTL {registration.ttl_seconds}s); "
            "Ctrl-C deregisters",
            flush=True,
        )

        async def report_states() -> None:
            async for state in registration.state_changes():
                print(f"state {state.value}", flush=True)

        reporter = asyncio.create_task(report_states())
        await _until_signal()
        await registration.close()
        reporter.cancel()
        print(f"deregistered {registration.key}", flush=True)
    return 0


async def cmd_nodes(args: argparse.Namespace) -> int:
    consistency = Consistency.CACHED if args.cached else Consistency.LINEARIZABLE
    async with RegistryClient(args.target) as client:
        nodes = await client.get_nodes(_scope(args), consistency=consistency)
    if args.json:
        print(
            json.dumps(
                {
                    "revision": nodes.revision,
                    "datacenters": {
                        dc: [_node_json(n) for n in ns] for dc, ns in nodes.datacenters.items()
                    },
                },
                indent=2,
                sort_keys=True,
            )
        )
    else:
        print(format_table(nodes))
    return 0


async def cmd_watch(args: argparse.Namespace) -> int:
    async with RegistryClient(args.target) as client:
        watch = await client.watch_nodes(_scope(args))
        events = watch.events()
        current = watch.current()
        for node in current:  # the starting point, as ADDED events
            event = NodeEvent(EventType.ADDED, node, current.revision)
            print(_event_json(event) if args.json else format_event(event), flush=True)
        stopper = asyncio.create_task(_until_signal())
        printer = asyncio.create_task(_print_events(events, args.json))
        await asyncio.wait({stopper, printer}, return_when=asyncio.FIRST_COMPLETED)
        printer.cancel()
        stopper.cancel()
    return 0


async def _print_events(events: Any, as_json: bool) -> None:
    async for event in events:
        print(_event_json(event) if as_json else format_event(event), flush=True)


async def cmd_health(args: argparse.Namespace) -> int:
    try:  # grpcio-health-checking comes with the server extra, not with the SDK (D31)
        from grpc_health.v1 import health_pb2, health_pb2_grpc
    except ModuleNotFoundError:
        print(f"error: health needs grpcio-health-checking: {SERVER_EXTRA_HINT}", file=sys.stderr)
        return 1
    target = args.target.split(",")[0].strip()
    async with grpc.aio.insecure_channel(target) as channel:
        try:
            response = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=args.service), timeout=5
            )
        except grpc.aio.AioRpcError as err:
            print(
                f"error: cannot check {target}: {err.code().name}: {err.details()}", file=sys.stderr
            )
            return 1
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
    print(f"{target} {status}")
    return 0 if response.status == health_pb2.HealthCheckResponse.SERVING else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="noderegistry", description="Cluster membership on etcd.")
    parser.add_argument("--log-level", default="WARNING", help="DEBUG, INFO, WARNING (default)")
    parser.add_argument("--version", action="version", version=f"noderegistry {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser(
        "serve", help="run a registry frontend (with a local etcd when no endpoints are given)"
    )
    add_serve_arguments(serve)

    def client_command(name: str, help_text: str) -> argparse.ArgumentParser:
        command = commands.add_parser(name, help=help_text)
        command.add_argument(
            "--target",
            default=os.environ.get("NODEREGISTRY_TARGET", DEFAULT_TARGET),
            help="frontend address(es), comma-separated (env NODEREGISTRY_TARGET, "
            f"default {DEFAULT_TARGET})",
        )
        return command

    register = client_command("register", "register a node and keep it alive until Ctrl-C")
    register.add_argument("--id", required=True)
    register.add_argument("--type", required=True)
    register.add_argument("--datacenter", required=True)
    register.add_argument("--address", required=True, help="host:port")
    register.add_argument("--metadata", action="append", default=[], metavar="KEY=VALUE")
    register.add_argument("--ttl", type=int, default=0, help="seconds (default: the registry's)")

    for name, help_text in (("nodes", "list the nodes"), ("watch", "print changes as they come")):
        command = client_command(name, help_text)
        command.add_argument("--datacenter", action="append", help="repeat for several")
        command.add_argument("--type", action="append", help="repeat for several")
        command.add_argument("--json", action="store_true", help="JSON (watch: one object a line)")
        if name == "nodes":
            command.add_argument(
                "--cached", action="store_true", help="answer from the frontend's cache at once"
            )

    health = client_command("health", "check a frontend's gRPC health (exit 0 when SERVING)")
    health.add_argument("--service", default="", help="service name (default: the server)")
    return parser


_ASYNC_COMMANDS = {
    "register": cmd_register,
    "nodes": cmd_nodes,
    "watch": cmd_watch,
    "health": cmd_health,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    level = "INFO" if args.command == "serve" and args.log_level == "WARNING" else args.log_level
    args.log_level = level
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if args.command == "serve":
        return run_serve(args)
    try:
        with contextlib.suppress(KeyboardInterrupt):
            return asyncio.run(_ASYNC_COMMANDS[args.command](args))
        return 130
    except RegistryError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
