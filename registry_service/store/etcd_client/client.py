"""`EtcdClient`: one process's connection to etcd and the APIs over it, as etcd's own client
bundles its KV, Lease and Watcher over one connection."""

from __future__ import annotations

from collections.abc import Callable

from registry_service.store.etcd_client.connection import EtcdConfig, EtcdConnection
from registry_service.store.etcd_client.kv import EtcdKV
from registry_service.store.etcd_client.lease import EtcdLease, LeaseRenewer
from registry_service.store.etcd_client.watch import EtcdWatcher


class EtcdClient:
    """The parts of etcd's v3 API the registry uses; one instance per process.

    Attributes:
        connection: endpoints, channels, auth (where the streams go: `connection.endpoint`).
        kv: Range, Txn, Put, Compact.
        lease: grant, revoke, time to live.
        renewer: every renewal of the clients' leases, over one LeaseKeepAlive stream.
        own_renewer: the frontend's own leases (its evictor candidacy, its announcement), over
            a LeaseKeepAlive stream of their own, so that they never wait behind thousands of
            client renewals (D71).
        watcher: prefix watches, and whether the last one is up.
    """

    def __init__(
        self, config: EtcdConfig, observe: Callable[[str, float, str], None] | None = None
    ) -> None:
        """`observe(operation, seconds, code)` is called after every unary call attempt with its
        gRPC code's name (`OK` when it succeeded): a metrics hook."""
        self.connection = EtcdConnection(config, observe)
        self.kv = EtcdKV(self.connection)
        self.lease = EtcdLease(self.connection)
        self.renewer = LeaseRenewer(self.connection)
        self.own_renewer = LeaseRenewer(self.connection)
        self.watcher = EtcdWatcher(self.connection)

    async def close(self) -> None:
        await self.renewer.close()
        await self.own_renewer.close()
        await self.connection.close()
