"""`noderegistry`: one command for operators and scripts.

`serve` runs a frontend (registry_service.process.cli); the client verbs talk to the registry
through the SDK (registry_cli.verbs), each with the shared connection and output options
(registry_cli.options). Failures are one `error:` line; exit statuses are in registry_cli.errors.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from client_sdk import RegistryError, __version__
from registry_cli import errors, options, output
from registry_cli.verbs import ClientVerb, admin, completion, health, nodes, register
from registry_service.process.cli import add_serve_arguments, run_serve

# Each verb group adds its verbs.
VERB_GROUPS = (register, nodes, health, admin)
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one `error:` line (main prints it), not usage + message."""

    def error(self, message: str) -> NoReturn:
        """Raises UsageError, which main prints as one line (exit status 2)."""
        raise errors.UsageError(f"{self.prog}: {message} (see '{self.prog} --help')")


def build_parser() -> argparse.ArgumentParser:
    """The whole command line: global options, `serve`, every verb group, `completion`."""
    parser = Parser(prog="noderegistry", description="Cluster membership on etcd.")
    parser.add_argument(
        "--log-level",
        type=str.upper,
        choices=LOG_LEVELS,
        default="WARNING",
        help="WARNING (default; serve: INFO), DEBUG, INFO, ERROR",
    )
    parser.add_argument("--version", action="version", version=f"noderegistry {__version__}")
    options.add_client_options(parser, root=True)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = commands.add_parser(
        "serve", help="run a registry frontend (with a local etcd when no endpoints are given)"
    )
    add_serve_arguments(serve)
    for group in VERB_GROUPS:
        group.add_to(commands)
    completion.add_to(commands)
    return parser


def _configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def _run_client_verb(args: argparse.Namespace) -> int:
    for warning in options.environment_warnings(os.environ):
        print(warning, file=sys.stderr)
    resolved = options.resolve(args, os.environ)
    verb: ClientVerb = args.client_verb
    try:
        with contextlib.suppress(KeyboardInterrupt):
            return asyncio.run(verb(args, resolved))
        return errors.EXIT_INTERRUPTED
    except RegistryError as err:
        print(errors.error_line(err), file=sys.stderr)
        return errors.EXIT_FAILED
    except output.OutputClosed:
        return errors.EXIT_OK  # whoever read the output has what it wanted (`| head -1`)


def _refuse_client_options(args: argparse.Namespace) -> None:
    given = options.given_client_options(args)
    if given:
        raise errors.UsageError(
            f"{given[0]} is an option of the client commands (register, nodes, watch, health, "
            f"admin ...), not of {args.command}"
        )


def main(argv: Sequence[str] | None = None) -> int:
    """Runs one command; returns its exit status (registry_cli.errors)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command == "serve" and args.log_level == "WARNING":
            args.log_level = "INFO"
        _configure_logging(args.log_level)
        if args.command in ("serve", "completion"):
            _refuse_client_options(args)
        if args.command == "serve":
            return run_serve(args)
        if args.command == "completion":
            return completion.run_completion(parser, args.shell)
        return _run_client_verb(args)
    except errors.UsageError as err:
        print(f"error: {errors.one_line(str(err))}", file=sys.stderr)
        return errors.EXIT_USAGE
    except KeyboardInterrupt:  # Ctrl-C before a command's own handling began (imports)
        return errors.EXIT_INTERRUPTED
