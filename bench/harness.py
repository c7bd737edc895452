"""The running benchmark: its etcd, its main frontend, the raw grpc.aio server, a client of each,
the results; what every family of rows (bench/*.py) is handed."""

from __future__ import annotations

import asyncio
import secrets
import time
from pathlib import Path
from typing import Any

import grpc
import grpc.aio
from noderegistry.v1 import registry_pb2 as pb
from noderegistry.v1 import registry_pb2_grpc

from bench.profiles import PROFILES
from bench.report import Results
from bench.retrying import register_retrying
from bench.stack import LOOPBACK_CLIENTS, Frontend, start_etcd, start_frontend
from bench.system import Processes, cpu_seconds_tree
from bench.zookeeper import ZooKeeperServer, missing
from registry_service.store.etcd_client import EtcdClient, EtcdConfig

# The main frontend's settings beyond loopback clients. Fan-out figures queue many messages per
# subscriber; the eviction figures measure the plain eviction path: not the budget
# (self-preservation; raised so that a mass expiry may be removed whole), nor the grace the
# evictor gives renewing nodes after etcd (or the frontend) comes up.
MAIN_FRONTEND_ARGS = (
    *LOOPBACK_CLIENTS,
    "--watch-queue-messages",
    "100000",
    "--eviction-budget-minimum",
    "100000",
    "--eviction-budget-type-minimum",
    "100000",
    "--evictor-outage-grace-seconds",
    "0",
)


def bench_node(node_id: str, node_type: str = "bench") -> pb.Node:
    return pb.Node(id=node_id, type=node_type, datacenter="dc1", address=f"10.0.0.1:{7000}")


class Bench:
    def __init__(self, profile: str, workdir: Path) -> None:
        self.profile = profile
        self.config: dict[str, Any] = PROFILES[profile]
        self.workdir = workdir
        self.processes = Processes()
        self.results = Results(profile)
        self.measured: dict[str, float] = {}
        """Figures one family hands a later one (the capacity the overload row starts from)."""
        self._zookeeper: ZooKeeperServer | None = None
        self.zookeeper_missing = ""

    async def start(self) -> None:
        self.etcd = await start_etcd(self.workdir / "etcd", quota_bytes=8 * 1024**3)
        self.etcd_client = EtcdClient(EtcdConfig(endpoints=(self.etcd.endpoint,)))
        self.main = await self.start_frontend(workers=1)
        self.raw = self.processes.start("-m", "bench.raw_fanout")
        assert self.raw.stdout is not None
        self.raw_target = f"127.0.0.1:{self.raw.stdout.readline().strip()}"
        self.channel = grpc.aio.insecure_channel(self.target)
        self.stub = registry_pb2_grpc.RegistryStub(self.channel)

    async def start_frontend(self, workers: int) -> Frontend:
        """Another frontend of the main cluster, on the run's etcd."""
        return await start_frontend(
            self.processes,
            self.etcd.endpoint,
            self.workdir / f"frontend-{workers}.log",
            workers=workers,
            extra=MAIN_FRONTEND_ARGS,
        )

    async def replace_frontend(self, workers: int) -> None:
        """Makes a new frontend with `workers` the main one (the old one keeps running)."""
        self.main = await self.start_frontend(workers)
        await self.channel.close()
        self.channel = grpc.aio.insecure_channel(self.target)
        self.stub = registry_pb2_grpc.RegistryStub(self.channel)

    async def zookeeper(self) -> ZooKeeperServer | None:
        """The run's ZooKeeper, started on first use; None (and `zookeeper_missing` says why)
        when it cannot run here or the profile leaves it out."""
        if self._zookeeper is None and not self.zookeeper_missing:
            self.zookeeper_missing = missing() if self.config["zookeeper"] else self.left_out
            if not self.zookeeper_missing:
                server = ZooKeeperServer(self.processes, self.workdir / "zookeeper")
                try:
                    await server.start()
                except RuntimeError as err:
                    self.zookeeper_missing = str(err)
                else:
                    self._zookeeper = server
        return self._zookeeper

    @property
    def left_out(self) -> str:
        """Why a profile without ZooKeeper (the smoke one: the test suite needs no JVM, D132)
        has no ZooKeeper rows."""
        return f"the {self.profile} profile leaves ZooKeeper out (make bench measures it)"

    @property
    def frontend(self) -> Any:
        return self.main.process

    @property
    def target(self) -> str:
        return self.main.target

    @property
    def admin(self) -> str:
        return self.main.admin

    def cpu_now(self) -> dict[str, float]:
        """CPU seconds used so far by the frontend (with its workers) and by etcd."""
        return {
            "frontend": cpu_seconds_tree(self.frontend.pid),
            "etcd": cpu_seconds_tree(self.etcd.process.pid),
        }

    def cpu_since(self, before: dict[str, float]) -> dict[str, float]:
        now = self.cpu_now()
        return {name: now[name] - before[name] for name in now}

    async def close(self) -> None:
        """Stops everything the run started (also after a start that failed half way)."""
        if hasattr(self, "channel"):
            await self.channel.close()
        if hasattr(self, "etcd_client"):
            await self.etcd_client.close()
        if self._zookeeper is not None:
            self._zookeeper.stop()
        self.processes.stop_all()
        if hasattr(self, "etcd"):
            self.etcd.stop()

    async def register_many(
        self, nodes: int, ttl: int, node_type: str, in_flight: int = 64
    ) -> tuple[list[pb.RegisterResponse], list[float]]:
        """Registers `nodes` new nodes of `node_type`, `in_flight` at a time; (responses,
        latencies)."""
        responses: list[pb.RegisterResponse] = []
        latencies: list[float] = []
        queue = iter(range(nodes))
        run = secrets.token_hex(2)

        async def worker() -> None:
            for i in queue:
                started = time.monotonic()
                request = pb.RegisterRequest(
                    node=bench_node(f"n{run}-{i}", node_type),
                    ttl_seconds=ttl,
                    idempotency_key=f"{run}-{i}",
                )
                responses.append(await register_retrying(self.stub, request))
                latencies.append(time.monotonic() - started)

        await asyncio.gather(*(worker() for _ in range(in_flight)))
        return responses, latencies
