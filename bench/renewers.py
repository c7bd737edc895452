"""A client process that keeps many registrations (or bare etcd leases) alive.

    python -m bench.renewers registry TARGET TTL   (stdin: "dc type id token" lines, then EOF)
    python -m bench.renewers single TARGET TTL     (the same input)
    python -m bench.renewers etcd TARGET TTL       (stdin: one lease id a line)

`registry`: a client holding many registrations, as the SDK does: ONE stream, one message per
round with every registration in it (`renewals`). `single`: one registration per client: a stream
of its own each, one message per renewal. `etcd`: bare leases over ONE LeaseKeepAlive stream.
Renews every TTL/3 until killed; prints `ready` after the first full round and `failed <n>` for
renewals that were refused.
"""

from __future__ import annotations

import asyncio
import random
import sys
from typing import Any

import grpc
import grpc.aio
from noderegistry.v1 import registry_pb2 as pb
from noderegistry.v1 import registry_pb2_grpc

from registry_service.store._etcdpb import rpc_pb2 as etcd_pb
from registry_service.store._etcdpb import rpc_pb2_grpc as etcd_grpc

# A stream the server shed before its first write fails that write INTERNAL ("execute_batch").
SHED = frozenset({grpc.StatusCode.CANCELLED, grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.INTERNAL})


def renewals(lines: list[str]) -> list[pb.Renewal]:
    result = []
    for line in lines:
        dc, node_type, node_id, token = line.split()
        key = pb.NodeKey(datacenter=dc, type=node_type, id=node_id)
        result.append(pb.Renewal(key=key, token=token))
    return result


async def registry(target: str, ttl: float, lines: list[str]) -> None:
    request = pb.KeepAliveRequest(renewals=renewals(lines))
    async with grpc.aio.insecure_channel(target) as channel:
        call = registry_pb2_grpc.RegistryStub(channel).KeepAlive()
        first = True
        while True:
            await call.write(request)
            response = await call.read()
            failed = sum(1 for result in response.results if result.code != 0)
            print(f"failed {failed}" if failed else ("ready" if first else "ok"), flush=True)
            first = False
            await asyncio.sleep(ttl / 3)


async def single(target: str, ttl: float, lines: list[str]) -> None:
    """One stream per registration (spread over a channel per hundred), one message each."""
    items = renewals(lines)
    channels = [grpc.aio.insecure_channel(target) for _ in range(max(1, len(items) // 100))]
    stubs = [registry_pb2_grpc.RegistryStub(channels[i % len(channels)]) for i in range(len(items))]
    calls: list[Any] = [stub.KeepAlive() for stub in stubs]

    async def renew(position: int, item: pb.Renewal) -> bool:
        # Thousands of streams opening at once: the server sheds some (D27); open again.
        for attempt in range(30):
            try:
                await calls[position].write(pb.KeepAliveRequest(key=item.key, token=item.token))
                return bool((await calls[position].read()).code == 0)
            except (grpc.aio.AioRpcError, asyncio.InvalidStateError) as err:
                if isinstance(err, grpc.aio.AioRpcError) and err.code() not in SHED:
                    raise
                calls[position] = stubs[position].KeepAlive()
                await asyncio.sleep(random.uniform(0.05, min(2.0, 0.1 * 2**attempt)))
        return False

    first = True
    while True:
        ok = await asyncio.gather(*(renew(p, item) for p, item in enumerate(items)))
        failed = ok.count(False)
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
    kinds = {"registry": registry, "single": single, "etcd": etcd}
    asyncio.run(kinds[sys.argv[1]](sys.argv[2], float(sys.argv[3]), lines))
