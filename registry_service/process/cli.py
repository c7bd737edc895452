"""The `serve` command of the `noderegistry` CLI (the rest of the CLI is in registry_cli)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import traceback

from registry_service import settings as settings_module
from registry_service.telemetry import tracing
from registry_service.telemetry.logs import configure_logging

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

    Anything that stops `serve` from starting or going on (a setting unknown or malformed, a
    missing server dependency, a port in use, etcd unreachable, ...) is one `error:` line on stderr
    naming the cause and the setting to change, and exit status 1; the traceback too only at
    `--log-level debug` (decision D42).
    """
    try:
        loaded = settings_module.Settings.load(namespace=args)
    except settings_module.SettingsError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    try:
        from registry_service.process.serving import serve
        from registry_service.startup import ServeError, one_line
    except ModuleNotFoundError as err:
        if (err.name or "").partition(".")[0] not in SERVER_EXTRA_MODULES:
            raise
        print(
            f"error: serve needs {err.name}, which the SDK alone does not install: "
            f"{SERVER_EXTRA_HINT}",
            file=sys.stderr,
        )
        return 1
    level = getattr(args, "log_level", "INFO")
    configure_logging(level, loaded.log_format)
    debug = level.upper() == "DEBUG"
    try:
        if loaded.tracing:
            tracing.enable()
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(serve(loaded))
    except (ServeError, tracing.TracingUnavailableError) as err:
        if debug:
            traceback.print_exc()
        print(f"error: {one_line(str(err))}", file=sys.stderr)
        return 1
    except Exception as err:  # a bug: still one line, the traceback at --log-level debug
        if debug:
            traceback.print_exc()
        hint = "" if debug else " (--log-level debug shows the traceback)"
        print(
            f"error: serve failed: {type(err).__name__}: {one_line(str(err))}{hint}",
            file=sys.stderr,
        )
        return 1
    return 0
