"""The `serve` command of the `noderegistry` CLI (the rest of the CLI is in registry_cli)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib

from registry_service import settings as settings_module
from registry_service.logs import configure_logging


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    """One --flag per setting (see the README's configuration table)."""
    settings_module.add_arguments(parser)


def run_serve(args: argparse.Namespace) -> int:
    """Runs a frontend (and a local etcd when no endpoints are set) until SIGINT or SIGTERM."""
    from registry_service.app import serve

    loaded = settings_module.apply_arguments(settings_module.Settings.load(), args)
    configure_logging(getattr(args, "log_level", "INFO"), loaded.log_format)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(loaded))
    return 0
