"""`register`: register a node and keep it alive until Ctrl-C (then deregister it); or, with
`--detach`, register it, hand over its registration token and leave it to its TTL. With
`--check URL` it is a sidecar: it checks the service beside it and reports the node's health
through the registration (registry_cli/sidecar.py, docs/design.md §13).
`deregister`: remove a detached registration with its token (docs/decisions.md D36, D41).

A running `register` deregisters its node itself (Ctrl-C); a registration removed behind its back
would be made anew at its next renewal. An operator removes any node with `admin node evict`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import importlib.util
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from client_sdk import Health, Node, NodeKey, Registration, RegistrationState, RegistryError
from registry_cli.errors import EXIT_FAILED, UsageError, error_line
from registry_cli.options import ClientOptions
from registry_cli.output import dumps, emit, node_json
from registry_cli.verbs import Commands, StopSignal, client_verb
from registry_cli.verbs.health import CLI_EXTRA_HINT

if TYPE_CHECKING:  # imported when --check is given: it needs grpcio-health-checking (D31)
    from registry_cli.sidecar import Sidecar


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


def positive_seconds(text: str) -> float:
    """`--check-interval`, `--check-timeout`: seconds above 0 (argparse type)."""
    try:
        seconds = float(text)
    except ValueError:
        seconds = 0.0
    if not seconds > 0:
        raise argparse.ArgumentTypeError(f"must be a number of seconds above 0, not {text!r}")
    return seconds


def positive_count(text: str) -> int:
    """`--check-failures`, `--check-passes`: a whole number from 1 (argparse type)."""
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number from 1, not {text!r}")
    return int(text)


def _add_check_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--check",
        action="append",
        default=[],
        metavar="URL",
        help="run as a sidecar: check the service with grpc://host:port[/service] "
        "(grpc.health.v1), http://host:port[/path] (2xx) or tcp://host:port (a connect), "
        "and report the node's health through its registration; repeat for several",
    )
    parser.add_argument(
        "--check-interval",
        type=positive_seconds,
        default=5.0,
        metavar="SECONDS",
        help="--check: seconds between probes (default 5)",
    )
    parser.add_argument(
        "--check-timeout",
        type=positive_seconds,
        default=2.0,
        metavar="SECONDS",
        help="--check: seconds a probe may take (default 2)",
    )
    parser.add_argument(
        "--check-failures",
        type=positive_count,
        default=3,
        metavar="N",
        help="--check: failed probes in a row that turn the node FAILING (default 3)",
    )
    parser.add_argument(
        "--check-passes",
        type=positive_count,
        default=2,
        metavar="N",
        help="--check: passed probes in a row that turn it PASSING again (default 2)",
    )


def add_to(commands: Commands) -> None:
    """Adds `register` and `deregister` to the root parser."""
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
    parser.add_argument(
        "--detach",
        action="store_true",
        help="register, print the registration token (or write it to --registration-token-file) "
        "and exit: nothing renews it, it lasts its TTL unless deregistered",
    )
    parser.add_argument(
        "--registration-token-file",
        metavar="FILE",
        help="--detach: write the token here (mode 0600) instead of printing it",
    )
    _add_check_options(parser)
    deregister = client_verb(
        commands,
        "deregister",
        "deregister a node registered with --detach, by its registration token",
        run_deregister,
    )
    deregister.add_argument("node", metavar="DC/TYPE/ID", help="the node to deregister")
    deregister.add_argument(
        "--registration-token-file",
        metavar="FILE",
        required=True,
        help="the file `register --detach --registration-token-file` wrote",
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
    health = registration.node.health
    checked = "" if health is Health.UNCHECKED else f", health {health.value}"
    return (
        f"registered {registration.key} at {registration.node.address} "
        f"(incarnation {registration.incarnation}, TTL {registration.ttl_seconds}s{checked}); "
        "Ctrl-C deregisters"
    )


def _health_line(health: Health, said: str, options: ClientOptions) -> str:
    if options.json:
        return dumps({"type": "HEALTH", "health": health.value, "output": said})
    return f"health {health.value} ({said})"


async def _sidecar(args: argparse.Namespace) -> Sidecar | None:
    """The checks of --check, or None without any; UsageError for a URL that is not one."""
    if not args.check:
        return None
    if args.detach:
        raise UsageError("--check runs beside the service until Ctrl-C: it cannot go with --detach")
    from registry_cli.sidecar import CheckUrlError, Sidecar, local_checks

    try:
        checks = local_checks(
            args.check,
            interval_seconds=args.check_interval,
            timeout_seconds=args.check_timeout,
            failures=args.check_failures,
            passes=args.check_passes,
        )
    except CheckUrlError as err:
        raise UsageError(f"--check {err}") from None
    return Sidecar(checks)


async def _report_health(
    registration: Registration, sidecar: Sidecar, options: ClientOptions
) -> None:
    async def report(health: Health, said: str) -> bool:
        try:
            await registration.update(health=health)
        except RegistryError as err:
            emit(f"warning: could not report health {health.value} (retrying): {err}")
            return False
        emit(_health_line(health, said, options))
        return True

    await sidecar.run(report)


async def _report_states(registration: Registration, options: ClientOptions) -> None:
    async for state in registration.state_changes():
        if state is RegistrationState.CLOSED:
            return
        if options.json:
            emit(dumps({"type": "STATE", "state": state.value, "key": str(registration.key)}))
        else:
            emit(f"state {state.value}")


def _write_token(path: str, token: str) -> None:
    """The token alone in a file only its owner may read."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(token + "\n")


async def _detach(
    registration: Registration, args: argparse.Namespace, options: ClientOptions
) -> int:
    token = await registration.detach()
    if args.registration_token_file:
        _write_token(args.registration_token_file, token)
    document = {
        "type": "DETACHED",
        "node": node_json(registration.node),
        "ttl_seconds": registration.ttl_seconds,
    }
    if not args.registration_token_file:
        document["token"] = token
    if options.json:
        emit(dumps(document))
    else:
        where = (
            f"token in {args.registration_token_file}"
            if args.registration_token_file
            else f"token {token}"
        )
        emit(
            f"registered {registration.key} (incarnation {registration.incarnation}); detached: "
            f"it lasts {registration.ttl_seconds}s unless renewed; {where}"
        )
    return 0


async def run_register(args: argparse.Namespace, options: ClientOptions) -> int:
    """`register`: registers and renews until a signal, then deregisters; `--detach` hands over the
    token."""
    if args.registration_token_file and not args.detach:
        raise UsageError("--registration-token-file goes with --detach")
    if args.check and importlib.util.find_spec("grpc_health") is None:  # cli extra (D31)
        print(
            f"error: register --check needs grpcio-health-checking: {CLI_EXTRA_HINT}",
            file=sys.stderr,
        )
        return EXIT_FAILED
    sidecar = await _sidecar(args)
    node = Node(args.id, args.type, args.datacenter, args.address, dict(args.metadata))
    if sidecar is not None:  # registered with the health the service has now
        health, said = await sidecar.first()
        node = dataclasses.replace(node, health=health)
    async with options.client() as client:
        registration = await client.register(node, ttl_seconds=args.ttl)
        if args.detach:
            return await _detach(registration, args, options)
        with StopSignal() as stop:
            emit(_registered(registration, options))
            reporter = asyncio.create_task(_report_states(registration, options))
            checker = None
            if sidecar is not None:
                emit(_health_line(node.health, said, options))
                checker = asyncio.create_task(_report_health(registration, sidecar, options))
            await stop.wait()
        if checker is not None:
            checker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await checker
        key = str(registration.key)
        try:
            await registration.deregister()
        except RegistryError as err:
            await reporter
            return _not_deregistered(key, registration.ttl_seconds, err, options)
        await reporter
    emit(dumps({"type": "DEREGISTERED", "key": key}) if options.json else f"deregistered {key}")
    return 0


def _not_deregistered(
    key: str, ttl_seconds: int, err: RegistryError, options: ClientOptions
) -> int:
    """The registry was not told: the node stays listed until its TTL runs out. Exit 1, and
    say so, rather than `deregistered`."""
    if options.json:
        emit(dumps({"type": "DEREGISTER_FAILED", "key": key, "error": str(err)}))
    print(
        f"{error_line(err)}; {key} was not deregistered: it stays registered until its "
        f"{ttl_seconds}s TTL runs out",
        file=sys.stderr,
    )
    return EXIT_FAILED


def _read_token(path: str) -> str:
    try:
        token = Path(path).read_text().strip()
    except (OSError, UnicodeDecodeError) as err:
        reason = err.strerror if isinstance(err, OSError) else "not text"
        raise UsageError(f"--registration-token-file: cannot read {path!r} ({reason})") from err
    if not token or any(c.isspace() for c in token):
        raise UsageError(f"--registration-token-file: {path!r} does not hold one token")
    return token


async def run_deregister(args: argparse.Namespace, options: ClientOptions) -> int:
    """`deregister NODE`: removes a detached registration with its token file."""
    parts = args.node.split("/")
    if len(parts) != 3 or not all(parts):
        raise UsageError(f"deregister: a node is DC/TYPE/ID, not {args.node!r}")
    key = NodeKey(*parts)
    token = _read_token(args.registration_token_file)
    async with options.client() as client:
        revision = await client.deregister(key, token)
    if options.json:
        emit(dumps({"type": "DEREGISTERED", "key": str(key), "revision": revision}))
    else:
        emit(f"deregistered {key} at revision {revision}")
    return 0
