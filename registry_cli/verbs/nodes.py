"""`nodes` and `watch`: the node list, once or as it changes."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Callable

from client_sdk import (
    Consistency,
    EventStream,
    EventType,
    NodeEvent,
    NodeList,
    NodeWatch,
    RegistryUnavailableError,
    Scope,
    StatusCode,
)
from registry_cli import output
from registry_cli.options import ClientOptions
from registry_cli.verbs import Commands, StopSignal, client_verb

_WAKE_UP_SECONDS = 3600.0  # NodeWatch.wait_for needs a timeout; the loop just waits again


def _add_scope(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--datacenter", action="append", help="repeat for several (default: all)")
    parser.add_argument("--type", action="append", help="repeat for several (default: all)")
    parser.add_argument(
        "--selector",
        default="",
        help="label selector on metadata, Kubernetes syntax: 'zone=a,!canary', "
        "'version in (2,3)' (default: every node)",
    )
    parser.add_argument(
        "--healthy",
        action="store_true",
        help="only healthy nodes (UP, no failing check); a watch sees a node that stops being "
        "healthy REMOVED (reason UNHEALTHY)",
    )


def _scope(args: argparse.Namespace) -> Scope:
    return Scope(
        frozenset(args.datacenter or ()),
        frozenset(args.type or ()),
        args.selector,
        healthy_only=args.healthy,
    )


def add_to(commands: Commands) -> None:
    """Adds `nodes` and `watch` to the root parser."""
    nodes = client_verb(commands, "nodes", "list the nodes", run_nodes)
    _add_scope(nodes)
    nodes.add_argument(
        "--cached",
        action="store_true",
        help="answer from the frontend's view at once (shows its age, and STALE during an etcd "
        "outage) instead of a linearizable read",
    )
    watch = client_verb(
        commands, "watch", "print the nodes as ADDED, then every change, until Ctrl-C", run_watch
    )
    _add_scope(watch)


async def run_nodes(args: argparse.Namespace, options: ClientOptions) -> int:
    """`nodes`: the scope's nodes, linearizable unless `--cached`."""
    consistency = Consistency.CACHED if args.cached else Consistency.LINEARIZABLE
    async with options.client() as client:
        nodes = await client.get_nodes(_scope(args), consistency=consistency)
    render = output.nodes_json if options.json else output.nodes_table
    output.emit(render(nodes, consistency))
    return 0


def _emit_event(event: NodeEvent, options: ClientOptions) -> None:
    output.emit(output.event_json(event) if options.json else output.event_line(event))


async def _print_events(events: EventStream, options: ClientOptions) -> None:
    async for event in events:
        _emit_event(event, options)


def _moved_from(seen: tuple[bool, float]) -> Callable[[NodeList], bool]:
    """Whether a list's staleness or age differs from `seen` (a new progress message came)."""
    return lambda nodes: (nodes.stale, nodes.cache_age_seconds) != seen


async def _print_staleness(watch: NodeWatch, options: ClientOptions) -> None:
    """A STALE line for every progress message while the frontend cannot reach etcd (the age
    grows), a CURRENT line once it can again. Raises the watch's error if it ends."""
    render = output.staleness_json if options.json else output.staleness_line
    seen = (False, 0.0)
    was_stale = False
    while True:
        try:
            nodes = await watch.wait_for(_moved_from(seen), _WAKE_UP_SECONDS)
        except TimeoutError:
            continue
        seen = (nodes.stale, nodes.cache_age_seconds)
        if nodes.stale or was_stale:
            output.emit(render(nodes.stale, watch.revision, nodes.cache_age_seconds))
        was_stale = nodes.stale


async def run_watch(args: argparse.Namespace, options: ClientOptions) -> int:
    """`watch`: the scope's nodes as ADDED, then every change and staleness, until a signal."""
    async with options.client() as client:
        try:
            async with asyncio.timeout(options.timeout_seconds):
                watch = await client.watch_nodes(_scope(args))
        except TimeoutError:
            raise RegistryUnavailableError(
                StatusCode.DEADLINE_EXCEEDED,
                f"no node list from {', '.join(options.endpoints)} within "
                f"{options.timeout_seconds:g}s (the registry or its etcd may be unavailable)",
            ) from None
        with StopSignal() as stop:
            events = watch.events()  # subscribed now: nothing falls between it and current()
            current = watch.current()
            for node in current:  # the starting point, as ADDED events
                _emit_event(NodeEvent(EventType.ADDED, node, current.revision), options)
            printer = asyncio.create_task(_print_events(events, options))
            staleness = asyncio.create_task(_print_staleness(watch, options))
            stopper = asyncio.create_task(stop.wait())
            done, _ = await asyncio.wait(
                {printer, staleness, stopper}, return_when=asyncio.FIRST_COMPLETED
            )
        for task in (printer, staleness, stopper):
            task.cancel()
        for ended in done - {stopper}:
            ended.result()  # the watch ended, or its reader went away: raises why
    return 0
