"""`register`: register a node and keep it alive until Ctrl-C (then deregister it).

`deregister` will join this group: it needs the registration token, which only the process that
registered holds (docs/decisions.md D36).
"""

from __future__ import annotations

import argparse
import asyncio

from client_sdk import Node, Registration, RegistrationState
from registry_cli.options import ClientOptions
from registry_cli.output import dumps, emit, node_json
from registry_cli.verbs import Commands, StopSignal, client_verb


def metadata_pair(text: str) -> tuple[str, str]:
    """`--metadata key=value` (argparse type: a malformed pair is a usage error)."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"takes key=value, not {text!r}")
    return key, value


def ttl_seconds(text: str) -> int:
    """`--ttl`: whole seconds, 0 for the registry's default (argparse type)."""
    try:
        seconds = int(text)
    except ValueError:
        seconds = -1
    if seconds < 0:
        raise argparse.ArgumentTypeError(
            f"must be a whole number of seconds, 0 (the registry's default) or more, not {text!r}"
        )
    return seconds


def add_to(commands: Commands) -> None:
    parser = client_verb(
        commands, "register", "register a node and keep it alive until Ctrl-C", run_register
    )
    parser.add_argument("--id", required=True, help="the node's id, unique in its dc and type")
    parser.add_argument("--type", required=True, help="its role: data, session, meta, ...")
    parser.add_argument("--datacenter", required=True)
    parser.add_argument("--address", required=True, help="host:port at which others reach it")
    parser.add_argument(
        "--metadata",
        action="append",
        default=[],
        type=metadata_pair,
        metavar="KEY=VALUE",
        help="repeat for several",
    )
    parser.add_argument(
        "--ttl", type=ttl_seconds, default=0, help="lease TTL in seconds (default: the registry's)"
    )


def _registered(registration: Registration, options: ClientOptions) -> str:
    if options.json:
        return dumps(
            {
                "type": "REGISTERED",
                "node": node_json(registration.node),
                "ttl_seconds": registration.ttl_seconds,
            }
        )
    return (
        f"registered {registration.key} at {registration.node.address} "
        f"(incarnation {registration.incarnation}, TTL {registration.ttl_seconds}s); "
        "Ctrl-C deregisters"
    )


async def _report_states(registration: Registration, options: ClientOptions) -> None:
    async for state in registration.state_changes():
        if state is RegistrationState.CLOSED:
            return
        if options.json:
            emit(dumps({"type": "STATE", "state": state.value, "key": str(registration.key)}))
        else:
            emit(f"state {state.value}")


async def run_register(args: argparse.Namespace, options: ClientOptions) -> int:
    node = Node(args.id, args.type, args.datacenter, args.address, dict(args.metadata))
    async with options.client() as client:
        registration = await client.register(node, ttl_seconds=args.ttl)
        with StopSignal() as stop:
            emit(_registered(registration, options))
            reporter = asyncio.create_task(_report_states(registration, options))
            await stop.wait()
        await registration.close()
        await reporter
    key = str(registration.key)
    emit(dumps({"type": "DEREGISTERED", "key": key}) if options.json else f"deregistered {key}")
    return 0
