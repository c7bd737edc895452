"""The chaos suite's checker: every watcher's stream against etcd's own history.

etcd's history of `members/` (read with a watch from revision 1) is the truth. A watcher's stream
is correct when each snapshot equals etcd's member set at its revision, and the deltas after it
are exactly etcd's member changes of each later revision, in order, each once (W1, W2): a resync
snapshot is the only allowed break, and it must be flagged.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field

import grpc
import grpc.aio
from noderegistry.v1 import registry_pb2 as pb
from noderegistry.v1 import registry_pb2_grpc

from registry_service.store.etcd_client import EtcdClient, WatchBatch

_KIND = {
    pb.EVENT_TYPE_ADDED: "ADDED",
    pb.EVENT_TYPE_UPDATED: "UPDATED",
    pb.EVENT_TYPE_REMOVED: "REMOVED",
}


@dataclass(frozen=True)
class MemberChange:
    revision: int
    kind: str  # ADDED, UPDATED, REMOVED
    node_id: str
    incarnation: int
    status: str = "UP"


@dataclass
class EtcdHistory:
    changes: list[MemberChange]

    def members_at(self, revision: int) -> dict[str, int]:
        """node id -> incarnation of every member at revision."""
        members: dict[str, int] = {}
        for change in self.changes:
            if change.revision > revision:
                break
            if change.kind == "REMOVED":
                members.pop(change.node_id, None)
            else:
                members[change.node_id] = change.incarnation
        return members

    def after(self, revision: int, until: int) -> list[MemberChange]:
        return [c for c in self.changes if revision < c.revision <= until]


async def read_history(client: EtcdClient, cluster: str, until: int) -> EtcdHistory:
    """Every change of the cluster's member records from revision 1 up to `until`."""
    prefix = f"/noderegistry/{cluster}/members/".encode()
    changes: list[MemberChange] = []
    present: dict[bytes, int] = {}
    async with asyncio.timeout(30):
        async for item in client.watcher.watch(prefix, 1):
            if isinstance(item, WatchBatch):
                for event in item.events:
                    key = event.kv.key
                    node_id = key.decode().rsplit("/", 1)[1]
                    if event.type == 1:  # DELETE
                        changes.append(
                            MemberChange(item.revision, "REMOVED", node_id, present.pop(key, 0))
                        )
                        continue
                    record = json.loads(event.kv.value)
                    kind = "UPDATED" if key in present else "ADDED"
                    present[key] = int(record["incarnation"])
                    changes.append(
                        MemberChange(
                            item.revision, kind, node_id, present[key], record.get("status", "UP")
                        )
                    )
            if item.revision >= until:
                break
    return EtcdHistory(changes)


def check_stream(messages: Sequence[pb.WatchNodesResponse], history: EtcdHistory) -> list[str]:
    """Violations of W1/W2 in one watcher's messages (all its streams, in order received)."""
    problems: list[str] = []
    expected: list[MemberChange] = []
    at = 0
    for message in messages:
        kind = message.WhichOneof("message")
        if kind == "snapshot":
            snapshot = message.snapshot
            if expected and not snapshot.resync:
                problems.append(f"unflagged snapshot at {snapshot.revision} with changes pending")
            got = {n.id: n.incarnation for dc in snapshot.datacenters for n in dc.nodes}
            want = history.members_at(snapshot.revision)
            if got != want:
                problems.append(f"snapshot at {snapshot.revision}: {got} != etcd's {want}")
            at = snapshot.revision
            expected = []
        elif kind == "delta":
            delta = message.delta
            if delta.relisted:
                at = delta.revision  # a flagged net difference after compaction: state only
                continue
            for change in history.after(at, delta.revision - 1):
                problems.append(f"missed {change}")
            want = [
                (c.kind, c.node_id, c.incarnation)
                for c in history.after(delta.revision - 1, delta.revision)
            ]
            got = [(_KIND[e.type], e.node.id, e.node.incarnation) for e in delta.events]
            if got != want:
                problems.append(f"delta {delta.revision}: {got} != etcd's {want}")
            if delta.revision <= at:
                problems.append(f"delta {delta.revision} not after {at}")
            at = delta.revision
        elif kind == "progress":
            for change in history.after(at, message.progress.revision):
                problems.append(f"progress {message.progress.revision} skipped {change}")
            at = max(at, message.progress.revision)
    return problems


@dataclass
class ResumingWatcher:
    """A watcher that, like the SDK, resumes on the next frontend from its last revision when a
    stream ends; it keeps every message of every stream, for `check_stream`."""

    targets: list[str]
    messages: list[pb.WatchNodesResponse] = field(default_factory=list)
    revision: int = 0
    nodes: dict[str, pb.Node] = field(default_factory=dict)
    streams: int = 0

    def start(self) -> ResumingWatcher:
        self._task = asyncio.create_task(self._run())
        return self

    async def _run(self) -> None:
        turn = 0
        while True:
            target = self.targets[turn % len(self.targets)]
            turn += 1
            async with grpc.aio.insecure_channel(target) as channel:
                stub = registry_pb2_grpc.RegistryStub(channel)
                call = stub.WatchNodes(pb.WatchNodesRequest(resume_revision=self.revision))
                self.streams += 1
                with contextlib.suppress(grpc.aio.AioRpcError):
                    async for message in call:
                        self.messages.append(message)
                        self._apply(message)
            await asyncio.sleep(0.1)  # a frontend just went away: the next one, shortly

    def _apply(self, message: pb.WatchNodesResponse) -> None:
        kind = message.WhichOneof("message")
        if kind == "snapshot":
            self.nodes = {n.id: n for dc in message.snapshot.datacenters for n in dc.nodes}
            self.revision = message.snapshot.revision
        elif kind == "delta":
            for event in message.delta.events:
                if event.type == pb.EVENT_TYPE_REMOVED:
                    self.nodes.pop(event.node.id, None)
                else:
                    self.nodes[event.node.id] = event.node
            self.revision = message.delta.revision
        elif kind == "progress":
            self.revision = max(self.revision, message.progress.revision)

    def removed(self) -> list[tuple[str, int]]:
        return [
            (event.node.id, event.reason)
            for message in self.messages
            if message.WhichOneof("message") == "delta"
            for event in message.delta.events
            if event.type == pb.EVENT_TYPE_REMOVED
        ]

    async def close(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


def by_registry(
    messages: Sequence[pb.WatchNodesResponse],
) -> dict[str, list[pb.WatchNodesResponse]]:
    """A federated stream (datacenter_revisions) split into one stream per registry: "" for the
    frontend's own etcd, else the remote datacenter's name. A full snapshot gives each registry
    its part at that registry's revision (a remote datacenter the frontend has not reached, with
    complete_revision 0, claims nothing); a snapshot, delta or progress naming a datacenter
    belongs to that datacenter alone."""
    streams: dict[str, list[pb.WatchNodesResponse]] = {}
    for message in messages:
        kind = message.WhichOneof("message")
        if kind == "snapshot" and not message.snapshot.datacenter:
            snapshot = message.snapshot
            local = [dc for dc in snapshot.datacenters if not dc.remote]
            streams.setdefault("", []).append(_snapshot(snapshot.revision, local, snapshot.resync))
            for dc in snapshot.datacenters:
                if dc.remote and dc.complete_revision:
                    part = _snapshot(dc.complete_revision, [dc], snapshot.resync)
                    streams.setdefault(dc.datacenter, []).append(part)
        else:
            named = getattr(message, str(kind)).datacenter
            streams.setdefault(named, []).append(message)
    return streams


def _snapshot(
    revision: int, datacenters: list[pb.DatacenterNodes], resync: bool
) -> pb.WatchNodesResponse:
    return pb.WatchNodesResponse(
        snapshot=pb.Snapshot(revision=revision, datacenters=datacenters, resync=resync)
    )


def check_federated_stream(
    messages: Sequence[pb.WatchNodesResponse], histories: dict[str, EtcdHistory]
) -> list[str]:
    """W1/W2 per datacenter: each registry's part of the stream against that registry's etcd
    history (`histories`: "" for the frontend's own etcd, else by remote datacenter)."""
    problems: list[str] = []
    for registry, stream in by_registry(messages).items():
        name = registry or "local"
        if registry not in histories:
            problems.append(f"messages of a registry not checked: {name}")
            continue
        problems.extend(
            f"{name}: {problem}" for problem in check_stream(stream, histories[registry])
        )
    return problems


@dataclass
class FederatedWatcher:
    """One raw WatchNodes stream that keeps a revision per registry (datacenter_revisions),
    started fresh or from a vector; keeps every message, for `check_federated_stream`."""

    target: str
    resume_revision: int = 0
    resume_revisions: dict[str, int] = field(default_factory=dict)
    messages: list[pb.WatchNodesResponse] = field(default_factory=list)
    revisions: dict[str, int] = field(default_factory=dict)  # "" the frontend's own etcd
    error: grpc.aio.AioRpcError | None = None

    def start(self) -> FederatedWatcher:
        self._channel = grpc.aio.insecure_channel(self.target)
        request = pb.WatchNodesRequest(
            resume_revision=self.resume_revision,
            datacenter_revisions=True,
            resume_revisions=self.resume_revisions,
        )
        self._call = registry_pb2_grpc.RegistryStub(self._channel).WatchNodes(request)
        self._task = asyncio.create_task(self._run())
        return self

    async def _run(self) -> None:
        try:
            async for message in self._call:
                self.messages.append(message)
                for registry, stream in by_registry([message]).items():
                    for part in stream:
                        revision = getattr(part, str(part.WhichOneof("message"))).revision
                        self.revisions[registry] = max(self.revisions.get(registry, 0), revision)
        except grpc.aio.AioRpcError as err:
            self.error = err

    def nodes(self, registry: str = "") -> set[str]:
        """The node ids the stream holds of one registry (from its messages, in order)."""
        held: set[str] = set()
        for part in by_registry(self.messages).get(registry, []):
            kind = part.WhichOneof("message")
            if kind == "snapshot":
                held = {n.id for dc in part.snapshot.datacenters for n in dc.nodes}
            elif kind == "delta":
                for event in part.delta.events:
                    if event.type == pb.EVENT_TYPE_REMOVED:
                        held.discard(event.node.id)
                    else:
                        held.add(event.node.id)
        return held

    async def close(self) -> None:
        self._call.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        await self._channel.close()
