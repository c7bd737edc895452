"""Small helpers over the raw generated stubs, for tests that speak the wire API directly."""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
from dataclasses import dataclass, field
from typing import Any

import grpc
import grpc.aio
from noderegistry.v1 import registry_pb2 as pb
from noderegistry.v1 import registry_pb2_grpc

from tests.support.waiting import eventually


def node(
    node_id: str, node_type: str = "data", datacenter: str = "dc1", **metadata: str
) -> pb.Node:
    return pb.Node(
        id=node_id,
        type=node_type,
        datacenter=datacenter,
        address=f"{node_id}.example:7000",
        metadata=metadata,
    )


def key_of(message: pb.Node) -> pb.NodeKey:
    return pb.NodeKey(datacenter=message.datacenter, type=message.type, id=message.id)


async def register(
    stub: registry_pb2_grpc.RegistryStub, message: pb.Node, ttl: int = 10, **fields: Any
) -> pb.RegisterResponse:
    fields.setdefault("idempotency_key", secrets.token_hex(8))
    return await stub.Register(pb.RegisterRequest(node=message, ttl_seconds=ttl, **fields))


async def register_through_outage(
    stub: registry_pb2_grpc.RegistryStub, message: pb.Node
) -> pb.RegisterResponse:
    """Register through an etcd outage: UNAVAILABLE (and deadlines) are retried with the same
    idempotency key, so a retry after an unknown outcome returns the same registration."""
    request = pb.RegisterRequest(node=message, ttl_seconds=60, idempotency_key=f"k-{message.id}")

    async def attempt() -> pb.RegisterResponse | None:
        try:
            return await stub.Register(request, timeout=5)
        except grpc.aio.AioRpcError as err:
            if err.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                return None
            raise

    return await eventually(attempt, timeout=30, interval=0.2, message=f"register {message.id}")


async def revoke_member_lease(etcd_client: Any, cluster: str, member: str) -> None:
    """Revokes the lease of a member (`dc1/data/n1`) in etcd, behind its owner's back."""
    _, kvs = await etcd_client.kv.range_prefix(f"/noderegistry/{cluster}/members/{member}".encode())
    await etcd_client.lease.revoke(int(json.loads(kvs[0].value)["lease"], 16))


async def node_ids(
    stub: registry_pb2_grpc.RegistryStub, consistency: int = pb.CONSISTENCY_LINEARIZABLE
) -> set[str]:
    response = await stub.GetNodes(pb.GetNodesRequest(consistency=consistency))
    return {n.id for dc in response.datacenters for n in dc.nodes}


class KeepAliveStream:
    """One KeepAlive stream: renew() sends a request and waits for its answer."""

    def __init__(self, stub: registry_pb2_grpc.RegistryStub) -> None:
        self.call = stub.KeepAlive()
        self._waiting: dict[tuple[str, str, str], list[asyncio.Future[pb.KeepAliveResponse]]] = {}
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for response in self.call:
            k = (response.key.datacenter, response.key.type, response.key.id)
            futures = self._waiting.get(k)
            if futures:
                futures.pop(0).set_result(response)

    async def renew(self, key: pb.NodeKey, token: str, timeout: float = 10) -> pb.KeepAliveResponse:
        future: asyncio.Future[pb.KeepAliveResponse] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault((key.datacenter, key.type, key.id), []).append(future)
        await self.call.write(pb.KeepAliveRequest(key=key, token=token))
        return await asyncio.wait_for(future, timeout)

    async def close(self) -> None:
        with contextlib.suppress(grpc.aio.AioRpcError, asyncio.InvalidStateError):
            await self.call.done_writing()
        self._reader.cancel()
        self.call.cancel()


@dataclass
class Change:
    revision: int
    type: int
    id: str
    incarnation: int
    reason: int = 0


@dataclass
class WatchRecorder:
    """Reads a WatchNodes stream in the background, applies it to a local view, and checks the
    stream's invariants as it goes: deltas and progress in non-decreasing revision order, deltas
    strictly increasing, every REMOVED of a node the view has, every ADDED of one it lacks."""

    stub: registry_pb2_grpc.RegistryStub
    resume_revision: int = 0
    scope: pb.Scope | None = None
    acknowledge: bool = False  # promise acknowledgements (the recorder never sends one)
    messages: list[pb.WatchNodesResponse] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list)
    nodes: dict[str, pb.Node] = field(default_factory=dict)
    revision: int = 0
    violations: list[str] = field(default_factory=list)
    error: grpc.aio.AioRpcError | None = None

    def start(self) -> WatchRecorder:
        self.call = self.stub.WatchNodes(
            pb.WatchNodesRequest(
                scope=self.scope,
                resume_revision=self.resume_revision,
                acknowledge=self.acknowledge,
            )
        )
        self._task = asyncio.create_task(self._read())
        return self

    async def _read(self) -> None:
        try:
            async for message in self.call:
                self.messages.append(message)
                self._apply(message)
        except grpc.aio.AioRpcError as err:
            self.error = err

    def _apply(self, message: pb.WatchNodesResponse) -> None:
        kind = message.WhichOneof("message")
        if kind == "snapshot":
            self.nodes = {n.id: n for dc in message.snapshot.datacenters for n in dc.nodes}
            self.revision = message.snapshot.revision
        elif kind == "delta":
            delta = message.delta
            if delta.revision <= self.revision:
                self.violations.append(f"delta {delta.revision} after {self.revision}")
            self.revision = delta.revision
            for event in delta.events:
                self.changes.append(
                    Change(
                        delta.revision,
                        event.type,
                        event.node.id,
                        event.node.incarnation,
                        event.reason,
                    )
                )
                if event.type == pb.EVENT_TYPE_REMOVED:
                    if self.nodes.pop(event.node.id, None) is None:
                        self.violations.append(f"REMOVED unknown {event.node.id}")
                else:
                    if event.type == pb.EVENT_TYPE_ADDED and event.node.id in self.nodes:
                        self.violations.append(f"ADDED twice {event.node.id}")
                    self.nodes[event.node.id] = event.node
        elif kind == "progress":
            if message.progress.revision < self.revision:
                self.violations.append(
                    f"progress {message.progress.revision} behind {self.revision}"
                )
            self.revision = message.progress.revision

    def kinds(self) -> list[str]:
        return [str(m.WhichOneof("message")) for m in self.messages]

    def snapshots(self) -> list[pb.Snapshot]:
        return [m.snapshot for m in self.messages if m.WhichOneof("message") == "snapshot"]

    async def wait_for(self, predicate: Any, timeout: float = 10.0, message: str = "") -> None:
        await eventually(lambda: predicate(self), timeout, message=message)

    async def wait_for_node(
        self, node_id: str, present: bool = True, timeout: float = 10.0
    ) -> None:
        await self.wait_for(
            lambda r: (node_id in r.nodes) == present,
            timeout,
            f"{node_id} {'present' if present else 'absent'}",
        )

    async def close(self) -> None:
        self.call.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
