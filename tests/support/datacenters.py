"""Two datacenters on one machine (federation, docs/design.md §10): each its own etcd and frontends
(as processes), each following the other through TCP proxies that stand for the WAN link, so a
test can cut, blackhole or heal it."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from registry_service.process.embedded_etcd import EtcdServer
from registry_service.store.etcd_client import EtcdClient, EtcdConfig
from tests.support.frontends import FrontendProcess
from tests.support.history import EtcdHistory, read_history
from tests.support.ports import free_port
from tests.support.proxy import TcpProxy


@dataclass
class Datacenter:
    """One datacenter's registry: its etcd members, its frontends, and the proxies through which
    the other datacenter reaches each of its frontends (the WAN link, this way)."""

    name: str
    members: Sequence[EtcdServer]
    frontends: list[FrontendProcess]
    links: list[TcpProxy]
    etcd: EtcdClient
    cluster: str

    @property
    def targets(self) -> list[str]:
        """Its frontends, as its own clients reach them (not through the WAN link)."""
        return [frontend.address for frontend in self.frontends]

    async def revision(self) -> int:
        return await self.etcd.kv.current_revision(f"/noderegistry/{self.cluster}/".encode())

    async def history(self, until: int) -> EtcdHistory:
        return await read_history(self.etcd, self.cluster, until)


@dataclass
class WanLink:
    """Every proxy between the two datacenters, both ways."""

    proxies: list[TcpProxy]

    def blackhole(self) -> None:
        """A partition: nothing passes, nothing is closed (the followers find out by silence)."""
        for proxy in self.proxies:
            proxy.blackhole()

    def sever(self) -> None:
        """The other side is gone: connections dropped, new ones refused."""
        for proxy in self.proxies:
            proxy.sever()

    def restore(self) -> None:
        for proxy in self.proxies:
            proxy.restore()

    async def close(self) -> None:
        for proxy in self.proxies:
            await proxy.close()


Spawn = Callable[..., Awaitable[FrontendProcess]]


async def start_two_datacenters(
    spawn: Spawn,
    dc1_members: Sequence[EtcdServer],
    dc2_members: Sequence[EtcdServer],
    cluster: str,
    *,
    frontends: int = 2,
    dc1: dict[str, object] | None = None,
    dc2: dict[str, object] | None = None,
) -> tuple[Datacenter, Datacenter, WanLink]:
    """Starts `frontends` frontends per datacenter, dc1 first (following a dc2 not up yet: its
    followers retry). `dc1`/`dc2`: settings of that datacenter's frontends (the silence timeout
    is 3 s unless they say otherwise)."""
    ports = {name: [free_port() for _ in range(frontends)] for name in ("dc1", "dc2")}
    links = {name: [TcpProxy("127.0.0.1", port) for port in ports[name]] for name in ports}
    for proxy in [*links["dc1"], *links["dc2"]]:
        await proxy.start()
    members = {"dc1": dc1_members, "dc2": dc2_members}
    overrides = {"dc1": dc1 or {}, "dc2": dc2 or {}}
    started: dict[str, Datacenter] = {}
    for name, other in (("dc1", "dc2"), ("dc2", "dc1")):
        endpoints = ",".join(member.endpoint for member in members[name])
        remote = f"{other}={','.join(proxy.endpoint for proxy in links[other])}"
        processes = [
            await spawn(
                endpoints,
                listen=f"127.0.0.1:{port}",
                datacenter=name,
                remote_datacenters=remote,
                **{"remote_silence_seconds": 3.0, **overrides[name]},
            )
            for port in ports[name]
        ]
        client = EtcdClient(EtcdConfig(endpoints=tuple(m.endpoint for m in members[name])))
        started[name] = Datacenter(name, members[name], processes, links[name], client, cluster)
    return started["dc1"], started["dc2"], WanLink([*links["dc1"], *links["dc2"]])


async def stop_two_datacenters(*datacenters: Datacenter, link: WanLink) -> None:
    await link.close()
    for datacenter in datacenters:
        with contextlib.suppress(Exception):
            await datacenter.etcd.close()
