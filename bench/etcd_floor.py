"""What a Python etcd client alone costs, in a process of its own: the floor under a frontend.

    python -m bench.etcd_floor register ENDPOINT N    N x (lease grant + guarded put), 64 in
                                                      flight; prints its CPU seconds per one
    python -m bench.etcd_floor read ENDPOINT PREFIX   reads every key under PREFIX; prints the
                                                      count (the parent times start to exit)

Both use the project's own etcd client (registry_service/store/etcd_client), the one the frontend
uses.
"""

from __future__ import annotations

import asyncio
import sys
import time

from bench.registrations import direct_registrations
from registry_service.store.etcd_client import EtcdClient, EtcdConfig


async def register(endpoint: str, count: int) -> None:
    client = EtcdClient(EtcdConfig(endpoints=(endpoint,)))
    try:
        await direct_registrations(client, min(64, count), 60)  # connections and caches warm
        before = time.process_time()
        await direct_registrations(client, count, 60)
        print((time.process_time() - before) / count, flush=True)
    finally:
        await client.close()


async def read(endpoint: str, prefix: str) -> None:
    client = EtcdClient(EtcdConfig(endpoints=(endpoint,)))
    try:
        _, kvs = await client.kv.range_prefix(prefix.encode())
        print(len(kvs), flush=True)
    finally:
        await client.close()


if __name__ == "__main__":
    if sys.argv[1] == "register":
        asyncio.run(register(sys.argv[2], int(sys.argv[3])))
    else:
        asyncio.run(read(sys.argv[2], sys.argv[3]))
