"""The verbs of `noderegistry`, one module per group; `main.build_parser` adds each in turn.

A client verb (it talks to the registry through the SDK) is added with `client_verb`, which gives
it the shared connection and output options (`registry_cli.options`) and records its coroutine;
`main` resolves the options and runs it. The operator verbs (`admin ...`) talk to the admin
ports (`admin_http.py`) with the same TLS, token, timeout and output options.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from collections.abc import Callable, Coroutine
from typing import Any, TypeAlias

from registry_cli.options import ClientOptions, add_client_options

ClientVerb = Callable[[argparse.Namespace, ClientOptions], Coroutine[Any, Any, int]]
# The root parser's `add_subparsers()` (a string: not subscriptable at run time).
Commands: TypeAlias = "argparse._SubParsersAction[Any]"


def client_verb(
    commands: Commands, name: str, help_text: str, run: ClientVerb, *, admin: bool = False
) -> argparse.ArgumentParser:
    """A verb's parser with the shared options (an admin verb's: `--admin-endpoints` in place of
    `--endpoints`); `run(args, options)` carries it out."""
    parser: argparse.ArgumentParser = commands.add_parser(
        name, help=help_text, description=help_text
    )
    add_client_options(parser, admin=admin)
    parser.set_defaults(client_verb=run)
    return parser


class StopSignal:
    """SIGINT and SIGTERM as an event, what ends `register` and `watch` gracefully.

    The handlers are installed on entering (inside a running event loop), so a line printed
    inside the block tells whoever reads it that a signal from then on is handled; they are
    removed on leaving, so a second Ctrl-C during the clean-up interrupts it.
    """

    _SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self._stop = asyncio.Event()

    def __enter__(self) -> StopSignal:
        loop = asyncio.get_running_loop()
        for signum in self._SIGNALS:
            loop.add_signal_handler(signum, self._stop.set)
        return self

    def __exit__(self, *exc_info: object) -> None:
        loop = asyncio.get_running_loop()
        for signum in self._SIGNALS:
            loop.remove_signal_handler(signum)

    async def wait(self) -> None:
        """Returns once SIGINT or SIGTERM arrived inside the block."""
        await self._stop.wait()
