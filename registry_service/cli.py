"""The `serve` command of the `noderegistry` CLI (the rest of the CLI is in registry_cli)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys

from registry_service import settings as settings_module
from registry_service import tracing
from registry_service.logs import configure_logging

# What `serve` needs beyond the SDK's grpcio and protobuf: the `server` extra (D31).
SERVER_EXTRA_HINT = "pip install 'node-registry[server]'"
SERVER_EXTRA_MODULES = frozenset(
    {"aiohttp", "prometheus_client", "grpc_health", "grpc_reflection", "pythonjsonlogger"}
)


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    """One --flag per setting (see the README's configuration table)."""
    settings_module.add_arguments(parser)


def run_serve(args: argparse.Namespace) -> int:
    """Runs a frontend (and a local etcd when no endpoints are set) until SIGINT or SIGTERM.

    A setting that is unknown or malformed, or a missing server dependency, is one `error:` line
    on stderr and exit status 1.
    """
    try:
        loaded = settings_module.Settings.load(namespace=args)
    except settings_module.SettingsError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    try:
        from registry_service.app import serve
    except ModuleNotFoundError as err:
        if (err.name or "").partition(".")[0] not in SERVER_EXTRA_MODULES:
            raise
        print(
            f"error: serve needs {err.name}, which the SDK alone does not install: "
            f"{SERVER_EXTRA_HINT}",
            file=sys.stderr,
        )
        return 1
    configure_logging(getattr(args, "log_level", "INFO"), loaded.log_format)
    if loaded.tracing:
        try:
            tracing.enable()
        except tracing.TracingUnavailableError as err:
            raise SystemExit(f"error: {err}") from None
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(loaded))
    return 0
