"""`admin`: what an operator does, for the whole cluster, through any frontend's admin port.

    admin frontends                          the announced frontends
    admin push [show|on|off]                 the push switch (stored in etcd: every frontend)
    admin push gray [--scope DC/TYPE]... [--network CIDR]... | --clear
    admin subscribers [--revision R]         every subscriber of every frontend
    admin convergence [--revision R]         who has not acknowledged R, since when
    admin suspects [list|confirm|cancel] [NODE]... [--datacenter DC]
    admin node show|maintenance|drain|clear|evict|unhold NODE [--reason T] [--hold S]
    admin audit [NODE]                       a node's transitions, or every operator action
    admin evictor                            the eviction leader's budgets

NODE is DC/TYPE/ID. The admin ports come from --admin-endpoints (NODEREGISTRY_ADMIN_ENDPOINTS),
with the shared TLS, token, timeout and output options.
"""

from __future__ import annotations

import argparse
import dataclasses
import urllib.parse
from collections.abc import Callable, Mapping
from typing import Any

from client_sdk import RegistryError
from registry_cli import admin_output
from registry_cli.admin_http import AdminClient
from registry_cli.errors import UsageError
from registry_cli.options import ClientOptions
from registry_cli.output import dumps, emit
from registry_cli.verbs import ClientVerb, Commands, client_verb

NODE_ACTIONS = ("show", "maintenance", "drain", "clear", "evict", "unhold")


def node_path(text: str) -> str:
    """DC/TYPE/ID (argparse type): the three parts, none empty."""
    parts = text.split("/")
    if len(parts) != 3 or not all(parts):
        raise argparse.ArgumentTypeError(f"a node is DC/TYPE/ID, not {text!r}")
    return "/".join(urllib.parse.quote(part, safe="") for part in parts)


def seconds(text: str) -> float:
    """A number of seconds >= 0 (argparse type), else a usage error naming the text."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a number of seconds >= 0, not {text!r}")
    return value


def _print(doc: Any, options: ClientOptions, render: Callable[[Any], str]) -> int:
    emit(dumps(doc, indent=2) if options.json else render(doc))
    return 0


def add_to(commands: Commands) -> None:
    """Adds `admin` and its actions to the root parser."""
    admin = commands.add_parser(
        "admin",
        help="operate the cluster through any frontend's admin port (push switch, convergence, "
        "nodes, suspects, audit)",
        description=__doc__.split("\n\n", 1)[0] if __doc__ else None,
    )
    actions = admin.add_subparsers(dest="admin_command", required=True, metavar="ACTION")

    def verb(name: str, help_text: str, run: ClientVerb) -> argparse.ArgumentParser:
        return client_verb(actions, name, help_text, run, admin=True)

    verb("frontends", "list the frontends announced in etcd", run_frontends)
    push = verb("push", "show or switch WatchNodes pushes, for every frontend", run_push)
    push.add_argument("state", nargs="?", choices=("show", "on", "off", "gray"), default="show")
    push.add_argument(
        "--scope", action="append", default=[], metavar="DC/TYPE", help="gray: hold back (repeat)"
    )
    push.add_argument(
        "--network", action="append", default=[], metavar="CIDR", help="gray: hold back (repeat)"
    )
    push.add_argument("--clear", action="store_true", help="gray: hold nobody back")
    for name, help_text in (
        ("subscribers", "every subscriber of every frontend, and whether it converged"),
        ("convergence", "the subscribers that have not acknowledged a revision, since when"),
    ):
        parser = verb(name, help_text, run_subscribers)
        parser.add_argument(
            "--revision", type=int, default=0, help="default: the answering frontend's latest"
        )
    suspects = verb("suspects", "list, confirm (evict) or cancel suspects", run_suspects)
    suspects.add_argument(
        "action", nargs="?", choices=("list", "confirm", "cancel"), default="list"
    )
    suspects.add_argument("nodes", nargs="*", type=node_path, metavar="NODE")
    suspects.add_argument("--datacenter", help="confirm/cancel every suspect of a datacenter")
    node = verb("node", "show a node, or act on it (audited)", run_node)
    node.add_argument("action", choices=NODE_ACTIONS)
    node.add_argument("node", type=node_path, metavar="NODE")
    node.add_argument("--reason", default="", help="recorded in the audit")
    node.add_argument(
        "--hold", type=seconds, default=0.0, help="evict: refuse its Register this long"
    )
    audit = verb("audit", "a node's transitions, or every operator action", run_audit)
    audit.add_argument("node", nargs="?", type=node_path, metavar="NODE")
    verb("evictor", "the eviction leader's budgets and decisions", run_evictor)


async def run_frontends(args: argparse.Namespace, options: ClientOptions) -> int:
    """`admin frontends`: every frontend announced in etcd."""
    doc = await AdminClient(options).get("/admin/frontends")
    return _print(doc, options, admin_output.frontends)


def _push_body(args: argparse.Namespace) -> dict[str, Any] | None:
    gray_given = bool(args.scope or args.network or args.clear)
    if args.state != "gray":
        if gray_given:
            raise UsageError("--scope, --network and --clear go with `admin push gray`")
        return None if args.state == "show" else {"enabled": args.state == "on"}
    if not gray_given:
        raise UsageError("admin push gray: give --scope and/or --network, or --clear")
    if args.clear and (args.scope or args.network):
        raise UsageError("admin push gray: --clear or --scope/--network, not both")
    return {"gray": {"scopes": args.scope, "networks": args.network}}


async def run_push(args: argparse.Namespace, options: ClientOptions) -> int:
    """`admin push [show|on|off|gray]`: shows the push switch, or switches it for every frontend."""
    body = _push_body(args)
    client = AdminClient(options)
    if body is None:
        doc = await client.get("/admin/push")
    else:
        doc = await client.request("PUT", "/admin/push", body)
    return _print(doc, options, admin_output.push)


async def run_subscribers(args: argparse.Namespace, options: ClientOptions) -> int:
    """`admin subscribers`/`convergence`: every frontend's subscribers against a revision."""
    query = f"?revision={args.revision}" if args.revision else ""
    doc = await AdminClient(options).get(f"/admin/convergence{query}")
    pending_only = args.admin_command == "convergence"
    if options.json and pending_only:
        doc = {**doc, "subscribers": [s for s in doc["subscribers"] if not s["converged"]]}
    return _print(doc, options, lambda d: admin_output.subscribers(d, pending_only=pending_only))


def _node_body(path: str) -> dict[str, str]:
    datacenter, node_type, node_id = (urllib.parse.unquote(p) for p in path.split("/"))
    return {"datacenter": datacenter, "type": node_type, "id": node_id}


async def run_suspects(args: argparse.Namespace, options: ClientOptions) -> int:
    """`admin suspects [list|confirm|cancel]`: lists suspects, or settles some."""
    client = AdminClient(options)
    if args.action == "list":
        if args.nodes or args.datacenter:
            raise UsageError("admin suspects: nodes and --datacenter go with confirm or cancel")
        return _print(await client.get("/admin/suspects"), options, admin_output.suspects)
    if bool(args.nodes) == bool(args.datacenter):
        raise UsageError(f"admin suspects {args.action}: give NODE... or --datacenter, one of them")
    body: Mapping[str, Any] = (
        {"datacenter": args.datacenter}
        if args.datacenter
        else {"nodes": [_node_body(n) for n in args.nodes]}
    )
    doc = await client.request("POST", f"/admin/suspects/{args.action}", body)
    return _print(doc, options, admin_output.settled)


async def run_node(args: argparse.Namespace, options: ClientOptions) -> int:
    """`admin node ACTION NODE`: shows a node, or acts on it (audited)."""
    if args.hold and args.action != "evict":
        raise UsageError("--hold goes with `admin node evict`")
    client = AdminClient(options)
    path = f"/admin/nodes/{args.node}"
    if args.action == "show":
        return _print(await client.get(path), options, admin_output.node)
    body: dict[str, Any] = {"reason": args.reason}
    if args.action == "evict":
        body["hold_seconds"] = args.hold
    doc = await client.request("POST", f"{path}/{args.action}", body)
    return _print(doc, options, admin_output.node_action)


async def run_audit(args: argparse.Namespace, options: ClientOptions) -> int:
    """`admin audit [NODE]`: a node's transitions, or every operator action."""
    path = "/admin/audit"
    if args.node:
        path += "?" + urllib.parse.urlencode(_node_body(args.node))
    return _print(await AdminClient(options).get(path), options, admin_output.audit)


async def run_evictor(args: argparse.Namespace, options: ClientOptions) -> int:
    """The leader's view when it can be reached (the frontend asked may not lead); else the
    answering frontend's."""
    client = AdminClient(options)
    doc = await client.get("/admin/evictor")
    if not doc["leader"]:
        announced = await client.get("/admin/frontends")
        for frontend in announced["frontends"]:
            peer = AdminClient(
                dataclasses.replace(options, admin_endpoints=(frontend["admin_url"],))
            )
            try:
                candidate = await peer.get("/admin/evictor")
            except RegistryError:
                continue
            if candidate["leader"]:
                doc = candidate
                break
    return _print(doc, options, admin_output.evictor)
