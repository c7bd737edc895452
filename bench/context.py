"""What a figure module (leases, expiry) uses of the running benchmark: `bench.run.Bench` is one."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any, Protocol

from noderegistry.v1 import registry_pb2 as pb
from noderegistry.v1 import registry_pb2_grpc

from registry_service.process.embedded_etcd import EtcdServer
from registry_service.store.etcd_client import EtcdClient


class Results(Protocol):
    def add(
        self,
        figure: str,
        value: float,
        unit: str,
        baseline: str = "",
        base: float = 0.0,
        **extra: Any,
    ) -> None: ...

    def goal(self, name: str, met: bool, detail: str) -> None: ...


class Processes(Protocol):
    def start(
        self, *args: str, stdin: bool = False, log: Path | None = None
    ) -> subprocess.Popen[str]: ...


class BenchContext(Protocol):
    config: dict[str, Any]
    workdir: Path
    etcd: EtcdServer
    etcd_client: EtcdClient
    stub: registry_pb2_grpc.RegistryStub
    target: str

    @property
    def results(self) -> Results: ...

    @property
    def processes(self) -> Processes: ...

    def cpu_now(self) -> dict[str, float]: ...

    def cpu_since(self, before: dict[str, float]) -> dict[str, float]: ...

    async def register_many(
        self, nodes: int, ttl: int, node_type: str, in_flight: int = 64
    ) -> tuple[list[pb.RegisterResponse], list[float]]: ...
