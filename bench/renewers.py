"""A client process that keeps many registrations (or bare etcd leases) alive over ONE stream.

    python -m bench.renewers registry TARGET TTL   (stdin: "dc type id token" lines, then EOF)
    python -m bench.renewers etcd TARGET TTL       (stdin: one lease id a line)

Renews every TTL/3 until killed; prints `ready` after the first full round and `failed <n>` for
renewals that were refused.
"""

from __future__ import annotations

import asyncio
import sys

import grpc.aio
from noderegistry.v1 import registry_pb2 as pb
from noderegistry.v1 import registry_pb2_grpc

from registry_service.store._etcdpb import rpc_pb2 as etcd_pb
from registry_service.store._etcdpb import rpc_pb2_grpc as etcd_grpc


async def registry(target: str, ttl: float, lines: list[str]) -> None:
    requests = []
    for line in lines:
        dc, node_type, node_id, token = line.split()
        requests.append(
            pb.KeepAliveRequest(
                key=pb.NodeKey(datacenter=dc, type=node_type, id=node_id), token=token
            )
        )
    async with grpc.aio.insecure_channel(target) as channel:
        call = registry_pb2_grpc.RegistryStub(channel).KeepAlive()
        first = True
        while True:
            for request in requests:
                await call.write(request)
            failed = 0
            for _ in requests:
                if (await call.read()).code != 0:
                    failed += 1
            print(f"failed {failed}" if failed else ("ready" if first else "ok"), flush=True)
            first = False
            await asyncio.sleep(ttl / 3)


async def etcd(target: str, ttl: float, lines: list[str]) -> None:
    leases = [int(line) for line in lines]
    async with grpc.aio.insecure_channel(target) as channel:
        call = etcd_grpc.LeaseStub(channel).LeaseKeepAlive()
        first = True
        while True:
            for lease in leases:
                await call.write(etcd_pb.LeaseKeepAliveRequest(ID=lease))
            failed = sum([1 for _ in leases if (await call.read()).TTL <= 0])
            print(f"failed {failed}" if failed else ("ready" if first else "ok"), flush=True)
            first = False
            await asyncio.sleep(ttl / 3)


if __name__ == "__main__":
    lines = [line for line in sys.stdin.read().splitlines() if line.strip()]
    kinds = {"registry": registry, "etcd": etcd}
    asyncio.run(kinds[sys.argv[1]](sys.argv[2], float(sys.argv[3]), lines))
