"""The services the health-check benchmark checks (bench/health_checks.py), in a process of their
own so that their CPU is not the frontends': one grpc.aio server serving grpc.health.v1 on `ports`
loopback ports, every node's service (`n0`, `n1`, ...) SERVING until told otherwise.

    python -m bench.health_targets PORTS

Prints `ready <port>,<port>,...`, then reads commands from stdin, one a line: `fail n17` and
`serve n17` set a service NOT_SERVING or SERVING; each is answered `ok` once set.
"""

from __future__ import annotations

import asyncio
import sys

import grpc.aio
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer

_STATUS = {
    "fail": health_pb2.HealthCheckResponse.NOT_SERVING,
    "serve": health_pb2.HealthCheckResponse.SERVING,
}


async def main(ports: int) -> None:
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    # Unknown services answer SERVICE_UNKNOWN: the default answers SERVING for every node.
    servicer = _ServingByDefault()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    bound = [server.add_insecure_port("127.0.0.1:0") for _ in range(ports)]
    await server.start()
    print("ready " + ",".join(map(str, bound)), flush=True)
    loop = asyncio.get_running_loop()
    while line := await loop.run_in_executor(None, sys.stdin.readline):
        command, _, service = line.strip().partition(" ")
        await servicer.set(service, _STATUS[command])
        print("ok", flush=True)
    await server.stop(0)


class _ServingByDefault(HealthServicer):
    """SERVING for any service not set otherwise (ten thousand nodes need no ten thousand sets)."""

    async def Check(self, request, context):  # grpc's name
        status = self._server_status.get(request.service)
        if status is None:
            return health_pb2.HealthCheckResponse(status=health_pb2.HealthCheckResponse.SERVING)
        return health_pb2.HealthCheckResponse(status=status)


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
