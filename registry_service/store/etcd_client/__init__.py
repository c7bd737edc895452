"""A thin asyncio client for etcd's v3 gRPC API, over the project's own generated stubs.

Why our own (docs/decisions.md D1): the PyPI clients either no longer import beside current
protobuf, lose events on watch resume, or open a stream per lease refresh. Split as etcd's
client/v3 is: `connection` (endpoints, channels, auth, one call with retry, etcd's errors as the
store's types), `kv`, `lease` (unary calls, and ONE LeaseKeepAlive stream for every renewal),
`watch`, `election` (etcd's concurrency recipe), and `client`, which bundles them.
"""

from registry_service.store.etcd_client.client import EtcdClient
from registry_service.store.etcd_client.connection import EtcdConfig
from registry_service.store.etcd_client.kv import prefix_end
from registry_service.store.etcd_client.watch import WatchBatch

__all__ = ["EtcdClient", "EtcdConfig", "WatchBatch", "prefix_end"]
