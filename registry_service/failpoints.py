"""Test-only failpoints, in the manner of etcd's gofail: the chaos suite makes a frontend fail at
an exact point, such as "committed in etcd but not answered", which no signal sent from outside
can hit reliably.

`REGISTRY_FAILPOINTS="register.after_commit=exit"` (comma-separated name=action pairs) arms them;
actions: `exit` (the process dies at once, as on SIGKILL), `hang` (the call never returns) and
`raise` (a RuntimeError whose text, RAISED_TEXT, must never reach a client: the error edge's
test). Failpoints: register.after_commit, get_nodes.before_read, watch.before_subscribe,
keep_alive.before_renew (one registration's renewal), keep_alive.read (a KeepAlive stream's
reader).
Read from the environment directly, not from Settings: failpoints are not a setting operators
have, and unarmed they cost one dictionary lookup.
"""

from __future__ import annotations

import asyncio
import os


def _armed(spec: str) -> dict[str, str]:
    pairs = (item.partition("=") for item in spec.split(",") if item.strip())
    return {name.strip(): action.strip() for name, _, action in pairs}


_ARMED = _armed(os.environ.get("REGISTRY_FAILPOINTS", ""))
RAISED_TEXT = "failpoint detail that must stay in the frontend's log"


async def failpoint(name: str) -> None:
    """Does what `name` is armed with (exit, hang, raise); nothing when it is not armed."""
    action = _ARMED.get(name)
    if action == "exit":
        os._exit(75)
    if action == "hang":
        await asyncio.Event().wait()
    if action == "raise":
        raise RuntimeError(f"{name}: {RAISED_TEXT}")
