"""False expiries, seen from etcd and from a watcher: a lease that ran out while its client kept
renewing shows as etcd deleting the node's `live/` key (whatever the registry then decides), and
the registry shows it to watchers as REMOVED or SUSPECT (the eviction budget). The frontend's own
leases (its evictor candidacy, its announcement) show as deletes of `election/` and `frontends/`
keys."""

from __future__ import annotations

import asyncio
import collections
import contextlib
from dataclasses import dataclass

import grpc.aio
from noderegistry.v1 import registry_pb2 as pb
from noderegistry.v1 import registry_pb2_grpc

from registry_service.store._etcdpb import rpc_pb2 as etcd_pb
from registry_service.store._etcdpb import rpc_pb2_grpc as etcd_grpc
from registry_service.store.etcd_client import EtcdClient, prefix_end


@dataclass(frozen=True)
class Expiries:
    """What happened to a set of registrations: leases run out, nodes shown SUSPECT or REMOVED."""

    expired: int
    suspect: int
    removed: int


class ExpiryWatch:
    """Records, from its start, by node type and id: live keys deleted, and the REMOVED and
    SUSPECT transitions a watcher of the registry sees; and the frontend's own keys deleted.
    Callers ask about the ids their clients held (`among`): a registration a client gave up on
    (its Register timed out, and it registered another id) expires too, and is no false expiry."""

    def __init__(self, etcd_client: EtcdClient, cluster: str, target: str) -> None:
        self.live_deleted: dict[str, set[str]] = collections.defaultdict(set)
        self.own_keys_deleted: collections.Counter[str] = collections.Counter()
        self.removed: dict[str, set[str]] = collections.defaultdict(set)
        self.suspect: dict[str, set[str]] = collections.defaultdict(set)
        self.resyncs = 0
        self._prefix = f"/noderegistry/{cluster}/".encode()
        self._etcd = etcd_client
        self._channel = grpc.aio.insecure_channel(target)
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        created = asyncio.Event()
        snapshot = asyncio.Event()
        self._tasks = [
            asyncio.create_task(self._etcd_deletes(created)),
            asyncio.create_task(self._registry(snapshot)),
        ]
        async with asyncio.timeout(60):
            await created.wait()
            await snapshot.wait()

    def among(self, node_type: str, ids: set[str]) -> Expiries:
        """What happened so far to the registrations `ids` of `node_type`."""
        return Expiries(
            len(self.live_deleted[node_type] & ids),
            len(self.suspect[node_type] & ids),
            len(self.removed[node_type] & ids),
        )

    async def _etcd_deletes(self, created: asyncio.Event) -> None:
        call = self._etcd.connection.stub(etcd_grpc.WatchStub).Watch()
        await call.write(
            etcd_pb.WatchRequest(
                create_request=etcd_pb.WatchCreateRequest(
                    key=self._prefix,
                    range_end=prefix_end(self._prefix),
                    filters=[etcd_pb.WatchCreateRequest.FilterType.NOPUT],
                )
            )
        )
        try:
            while True:
                response = await call.read()
                created.set()
                for event in response.events:
                    if event.type != etcd_pb.Event.DELETE:
                        continue
                    parts = event.kv.key[len(self._prefix) :].decode().split("/")
                    if parts[0] == "live" and len(parts) >= 4:
                        self.live_deleted[parts[2]].add("/".join(parts[3:]))
                    elif parts[0] in ("election", "frontends"):
                        self.own_keys_deleted[parts[0]] += 1
        finally:
            call.cancel()

    async def _registry(self, snapshot: asyncio.Event) -> None:
        stub = registry_pb2_grpc.RegistryStub(self._channel)
        statuses: dict[tuple[str, str], int] = {}
        with contextlib.suppress(grpc.aio.AioRpcError):
            async for message in stub.WatchNodes(pb.WatchNodesRequest()):
                kind = message.WhichOneof("message")
                if kind == "snapshot":
                    if snapshot.is_set():
                        self.resyncs += 1
                    snapshot.set()
                    current = {
                        (node.type, node.id): node.status
                        for group in message.snapshot.datacenters
                        for node in group.nodes
                    }
                    for key, status in current.items():
                        if status == pb.NODE_STATUS_SUSPECT:
                            self.suspect[key[0]].add(key[1])
                    for node_type, node_id in statuses.keys() - current:
                        self.removed[node_type].add(node_id)
                    statuses = current
                elif kind == "delta":
                    for event in message.delta.events:
                        key = (event.node.type, event.node.id)
                        if event.type == pb.EVENT_TYPE_REMOVED:
                            self.removed[key[0]].add(key[1])
                            statuses.pop(key, None)
                            continue
                        if event.node.status == pb.NODE_STATUS_SUSPECT:
                            self.suspect[key[0]].add(key[1])
                        statuses[key] = event.node.status

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, grpc.aio.AioRpcError):
                await task
        await self._channel.close()
