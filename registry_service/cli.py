"""The `noderegistry` command."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
from collections.abc import Sequence

from registry_service import settings as settings_module


def _serve(args: argparse.Namespace) -> int:
    from registry_service.app import serve

    loaded = settings_module.apply_arguments(settings_module.Settings.load(), args)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(loaded))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="noderegistry", description="Cluster membership on etcd.")
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING (default INFO)")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser(
        "serve", help="run a registry frontend (and a local etcd when no endpoints are given)"
    )
    settings_module.add_arguments(serve)
    serve.set_defaults(handler=_serve)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    return int(args.handler(args))


if __name__ == "__main__":
    sys.exit(main())
