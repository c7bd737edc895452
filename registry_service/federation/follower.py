"""Following the other datacenters' registries (federation, docs/design.md §10).

Each frontend follows each remote datacenter over one WatchNodes stream to that datacenter's
frontends, scoped to it. The stream is a client_sdk `NodeWatch`: the SDK's resume from its
revision, failover across the datacenter's frontends, resync handling and silence watchdog are
shared, not copied (decision D52); this is the one module of the service that imports the SDK.
What the stream says feeds the watch hub's `RemoteViews` (hub/remote_view.py), which serves it
to this frontend's subscribers in that datacenter's own revisions.

Contracts:
- Nothing here writes: a remote datacenter is served read-only, and nothing of it is ever evicted
  from here.
- A follower never stops: a datacenter it cannot reach, or that refuses it (token, TLS), is
  logged (once per run of failures) and retried with backoff; its last list stays, stale.
- Starting a frontend never waits for a remote datacenter.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping

import client_sdk
from client_sdk import ClientConfig, RegistryClient, Scope, WatchConfig, WatchStep, WatchStepKind
from registry_service.domain import EventType, Health, Node, NodeEvent, NodeStatus, RemovalReason
from registry_service.hub.remote_view import RemoteViews
from registry_service.retry import Backoff, ThrottledLog
from registry_service.settings import Settings

log = logging.getLogger(__name__)

# The longest wait between two tries at a remote datacenter that cannot be reached, by the
# follower and by its SDK watch: one that comes back is followed within about this, plus gRPC's
# own reconnect backoff (at most 2 s) (D81). A try is one connection attempt per frontend.
_RETRY_MAX_SECONDS = 2.0


def node_from_sdk(node: client_sdk.Node) -> Node:
    """The SDK's node (what the remote datacenter said) as the service's own."""
    return Node(
        id=node.id,
        type=node.type,
        datacenter=node.datacenter,
        address=node.address,
        metadata=dict(node.metadata),
        incarnation=node.incarnation,
        status=NodeStatus(node.status.value),
        health=Health(node.health.value),
        damped=node.damped,
    )


def event_from_sdk(event: client_sdk.NodeEvent) -> NodeEvent:
    """The SDK's event (what the remote datacenter said) as the service's own."""
    return NodeEvent(
        EventType(event.type.value), node_from_sdk(event.node), RemovalReason(event.reason.value)
    )


class DatacenterFollower:
    """Follows one remote datacenter into the hub's RemoteViews, until cancelled.

    Args:
        datacenter: the remote datacenter (the stream's scope).
        client: a client of that datacenter's frontends (TLS and token toward them).
        watch: the stream's settings: its silence timeout; the shrink guard off (the followed
            list is passed on as the remote registry says it; subscribers' SDKs guard their own).
        remotes: where what the stream says goes.
    """

    def __init__(
        self, datacenter: str, client: RegistryClient, watch: WatchConfig, remotes: RemoteViews
    ) -> None:
        self.datacenter = datacenter
        self.client = client
        self._watch_config = watch
        self._remotes = remotes
        self._link = ThrottledLog(log, f"datacenter {datacenter} ({','.join(client.targets)})")
        self._client = client

    async def run(self) -> None:
        """Follows the datacenter, resuming after every failure with backoff, until cancelled."""
        backoff = Backoff(initial=0.5, maximum=_RETRY_MAX_SECONDS)
        while True:
            try:
                watch = await self._client.watch_nodes(
                    Scope.of(self.datacenter), config=self._watch_config
                )
            except client_sdk.RegistryError as err:
                self._lost(f"cannot follow it ({err})")
                await backoff.wait()
                continue
            backoff.reset()
            async with watch:
                steps = watch.steps()
                try:
                    async for step in steps:
                        self._apply(step)
                finally:
                    steps.close()
            self._lost(f"its watch ended ({watch.error})")
            await backoff.wait()

    def _lost(self, why: str) -> None:
        self._remotes.interrupted(self.datacenter)
        self._link.failed(f"{why}; its last list is kept, marked stale")

    def _apply(self, step: WatchStep) -> None:
        if step.datacenter:
            return  # a datacenter the remote frontend follows in turn: not its own
        name = self.datacenter
        if step.kind is WatchStepKind.INTERRUPTED:
            self._lost("the stream broke; resuming on its next frontend")
            return
        if self._link.failures:
            self._link.succeeded()
        if step.kind is WatchStepKind.SNAPSHOT and step.nodes is not None:
            state = step.nodes.datacenter_states.get(name)
            changed = state.changed_revision if state and state.changed_revision else step.revision
            nodes = [node_from_sdk(node) for node in step.nodes.datacenters.get(name, ())]
            self._remotes.load(name, nodes, step.revision, changed)
        elif step.kind is WatchStepKind.DELTA:
            events = [event_from_sdk(event) for event in step.events]
            self._remotes.delta(name, events, step.revision, step.relisted)
        elif step.kind is WatchStepKind.PROGRESS:
            self._remotes.progress(name, step.revision, step.stale, step.age_seconds)


def client_config(settings: Settings) -> ClientConfig:
    """What the followers' clients use toward the remote datacenters: the TLS files (read when a
    client is made), the token and the retry pacing."""
    return ClientConfig(
        tls_ca_file=settings.remote_tls_ca_file,
        tls_cert_file=settings.remote_tls_cert_file,
        tls_key_file=settings.remote_tls_key_file,
        bearer_token=settings.remote_token,
        retry_max_seconds=_RETRY_MAX_SECONDS,
    )


class Federation:
    """Every follower of a frontend: one per remote datacenter, started and stopped together,
    and started anew with new clients when the TLS files toward them change (`follow_anew`)."""

    def __init__(
        self, remotes: Mapping[str, tuple[str, ...]], views: RemoteViews, settings: Settings
    ) -> None:
        """`settings`: the TLS files, token and silence timeout toward the remote datacenters."""
        self._settings = settings
        self._views = views
        self._targets = {name: tuple(targets) for name, targets in sorted(remotes.items())}
        silence_timeout_seconds = settings.remote_silence_seconds
        self._watch = WatchConfig(shrink_ratio=2.0, silence_timeout_seconds=silence_timeout_seconds)
        self.followers = self._followers(self.new_clients())
        self._tasks: list[asyncio.Task[None]] = []
        self._retiring: set[asyncio.Task[None]] = set()
        self._started = False

    def new_clients(self) -> dict[str, RegistryClient]:
        """A client of each remote datacenter's frontends, with the TLS files as they are now.

        Raises:
            client_sdk.InvalidArgumentError: a TLS file cannot be read, or the key is not the
                certificate's.
        """
        config = client_config(self._settings)
        return {
            name: RegistryClient(list(targets), config=config)
            for name, targets in self._targets.items()
        }

    def _followers(self, clients: Mapping[str, RegistryClient]) -> list[DatacenterFollower]:
        return [
            DatacenterFollower(name, clients[name], self._watch, self._views)
            for name in self._targets
        ]

    def start(self) -> None:
        """Starts one follower task per remote datacenter."""
        self._started = True
        for follower in self.followers:
            targets = ",".join(follower.client.targets)
            log.info("following datacenter %s at %s", follower.datacenter, targets)
            self._start(follower)

    def _start(self, follower: DatacenterFollower) -> None:
        self._tasks.append(
            asyncio.create_task(follower.run(), name=f"follow-{follower.datacenter}")
        )

    def follow_anew(self, clients: Mapping[str, RegistryClient]) -> None:
        """Follows every remote datacenter with new clients (`new_clients`: the TLS files read
        again). Each follower's stream ends at once, before it applies anything more, and a new
        one opens with the new credentials; its first list replaces the last one kept (only the
        differences reach this frontend's watchers), and until then the last one is served. The
        old clients are closed in the background."""
        old_tasks, old_followers = self._tasks, self.followers
        for task in old_tasks:
            task.cancel()
        self._tasks, self.followers = [], self._followers(clients)
        if self._started:
            for follower in self.followers:
                self._start(follower)
        retiring = asyncio.create_task(self._retire(old_tasks, old_followers))
        self._retiring.add(retiring)
        retiring.add_done_callback(self._retiring.discard)

    @staticmethod
    async def _retire(tasks: list[asyncio.Task[None]], followers: list[DatacenterFollower]) -> None:
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await asyncio.gather(
            *(follower.client.close() for follower in followers), return_exceptions=True
        )

    async def stop(self) -> None:
        """Cancels the followers and closes their clients."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await asyncio.gather(*list(self._retiring))
        await asyncio.gather(*(follower.client.close() for follower in self.followers))
