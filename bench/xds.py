"""xDS (docs/design.md §12): a change until the last of N xDS clients has it, beside the same
change to N WatchNodes subscribers in the same run; and many changes to 100 xDS clients, each
client's endpoint set checked against the registry's view after every quiet period.

The rows are two families of `make bench` (`python -m bench.run --only xds,xds-churn`), run on
the main frontend while it has one worker. The clients are raw ADS streams (state of the world,
as grpcio's client), many to a process: each subscribes to one endpoints resource, checks every
assignment as a stock client would (parses, its name, IP endpoints, weights, priorities from 0)
and ACKs it, or NACKs it saying why.

    python -m bench.xds clients KIND TARGET NAME STREAMS      one client process (KIND xds|watch)

A client process prints `ready <n>` once its streams are open, then `seen <id> <time>` when every
one of its streams holds node <id>, `gone <id> <time>` when none does any more; with KIND
xds-report, for each line `report` on its stdin, `state <stream> <nacks> <digest>` per stream
(digest: of the sorted (id, health, weight) triples it holds) and `reported`. It stops when stdin
closes.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import hashlib
import ipaddress
import random
import secrets
import subprocess
import sys
import time
from typing import TYPE_CHECKING, Any

import grpc
import grpc.aio
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.service.discovery.v3 import discovery_pb2
from google.rpc import status_pb2
from noderegistry.v1 import registry_pb2 as pb
from noderegistry.v1 import registry_pb2_grpc

from bench.retrying import register_retrying
from bench.stats import percentile
from bench.subscribers import Tally, open_with_retry

if TYPE_CHECKING:  # a client process needs none of the harness
    from bench.harness import Bench

ENDPOINTS = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
ADS = "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources"
FANOUT_TYPE = "xbench"  # a type of its own: the assignment holds this figure's nodes only
CHURN_TYPE = "xchurn"
POOL_NODES = 60  # the churn's nodes at most: every change sends each client the whole assignment
# Health as the registry maps it (registry_service/xds/resources.py): UP 1, DRAINING 3, else 2.
_HEALTH = {pb.NODE_STATUS_UP: 1, pb.NODE_STATUS_DRAINING: 3}


def digest(triples: list[tuple[str, int, int]]) -> str:
    return hashlib.sha256(repr(sorted(triples)).encode()).hexdigest()[:16]


def view_digest(nodes: list[pb.Node]) -> str:
    """The digest an xDS client's endpoint set has when it equals these nodes."""
    triples = []
    for node in nodes:
        text = node.metadata.get("weight", "")
        weight = max(1, min(10_000, int(text))) if text.isdigit() else 1
        triples.append((node.id, _HEALTH.get(node.status, 2), weight))
    return digest(triples)


@functools.lru_cache(maxsize=65536)
def _check_ip(address: str) -> None:
    ipaddress.ip_address(address)  # ValueError when it is not one


class Checked:
    """One assignment as a stock client checks it: the endpoints, or why it is refused."""

    def __init__(self, response: discovery_pb2.DiscoveryResponse, name: str) -> None:
        self.error = ""
        self.triples: list[tuple[str, int, int]] = []
        try:
            (packed,) = response.resources
            assignment = endpoint_pb2.ClusterLoadAssignment()
            if not packed.Unpack(assignment):
                raise ValueError(f"not an assignment: {packed.type_url}")
            if assignment.cluster_name != name:
                raise ValueError(f"assignment of {assignment.cluster_name!r}, not {name!r}")
            priorities = {locality.priority for locality in assignment.endpoints}
            if priorities and priorities != set(range(max(priorities) + 1)):
                raise ValueError(f"priorities {sorted(priorities)} do not start at 0 unbroken")
            for locality in assignment.endpoints:
                if locality.load_balancing_weight.value < 1:
                    raise ValueError("a locality without weight")
                for endpoint in locality.lb_endpoints:
                    socket = endpoint.endpoint.address.socket_address
                    _check_ip(socket.address)
                    if not 0 < socket.port_value < 65536:
                        raise ValueError(f"port {socket.port_value}")
                    weight = endpoint.load_balancing_weight.value
                    if weight < 1:
                        raise ValueError("an endpoint weight below 1")
                    self.triples.append(
                        (endpoint.endpoint.hostname, endpoint.health_status, weight)
                    )
        except ValueError as err:
            self.error = str(err)


class GoneTally(Tally):
    """Tally's `seen`, and `gone` when every stream has lost a node it had."""

    def __init__(self, streams: int) -> None:
        super().__init__(streams)
        self.lost: collections.Counter[str] = collections.Counter()

    def lose(self, node_id: str) -> None:
        self.lost[node_id] += 1
        if self.lost[node_id] == self.streams:
            print(f"gone {node_id} {time.monotonic():.6f}", flush=True)
            del self.lost[node_id]


# Per stream of a reporting process: its NACKs and its endpoints (printed on request).
states: dict[int, tuple[int, list[tuple[str, int, int]]]] = {}


async def xds_stream(
    channel: grpc.aio.Channel, tally: GoneTally, name: str, index: int, report: bool
) -> None:
    """One raw ADS stream on one endpoints resource: checks, ACKs or NACKs each assignment."""
    call: Any = None
    first = discovery_pb2.DiscoveryRequest(type_url=ENDPOINTS, resource_names=[name])
    first.node.id = f"bench-{index}"

    async def open_stream() -> Any:
        nonlocal call
        call = channel.stream_stream(
            ADS,
            request_serializer=discovery_pb2.DiscoveryRequest.SerializeToString,
            response_deserializer=discovery_pb2.DiscoveryResponse.FromString,
        )()
        await call.write(first)
        return await call.read()

    response = await open_with_retry(open_stream, tally)
    held: set[str] = set()
    accepted = ""
    nacks = 0
    while True:
        checked = Checked(response, name)
        ack = discovery_pb2.DiscoveryRequest(
            type_url=ENDPOINTS, resource_names=[name], response_nonce=response.nonce
        )
        if checked.error:
            nacks += 1
            ack.version_info = accepted
            ack.error_detail.CopyFrom(status_pb2.Status(code=3, message=checked.error))
        else:
            accepted = ack.version_info = response.version_info
            now = {triple[0] for triple in checked.triples}
            for node_id in now - held:
                tally.saw(node_id)
            for node_id in held - now:
                tally.lose(node_id)
            held = now
            if report:
                states[index] = (nacks, checked.triples)
        await call.write(ack)
        response = await call.read()


async def watch_stream(channel: grpc.aio.Channel, tally: GoneTally, node_type: str) -> None:
    """One WatchNodes stream of the same nodes (the baseline)."""
    stub = registry_pb2_grpc.RegistryStub(channel)

    async def open_stream() -> Any:
        call = stub.WatchNodes(pb.WatchNodesRequest(scope=pb.Scope(types=[node_type])))
        await call.read()  # the snapshot
        return call

    call = await open_with_retry(open_stream, tally)
    while True:
        message = await call.read()
        if message.WhichOneof("message") == "delta":
            for event in message.delta.events:
                if event.type == pb.EVENT_TYPE_ADDED:
                    tally.saw(event.node.id)
                elif event.type == pb.EVENT_TYPE_REMOVED:
                    tally.lose(event.node.id)


async def clients_main(kind: str, target: str, name: str, streams: int) -> None:
    tally = GoneTally(streams)
    channels = [
        grpc.aio.insecure_channel(target, options=[("grpc.use_local_subchannel_pool", 1)])
        for _ in range(max(1, streams // 100))
    ]
    report = kind == "xds-report"
    tasks = [
        asyncio.create_task(
            xds_stream(channels[i % len(channels)], tally, name, i, report)
            if kind.startswith("xds")
            else watch_stream(channels[i % len(channels)], tally, name)
        )
        for i in range(streams)
    ]
    await tally.all_open.wait()
    print(f"ready {tally.reopened}", flush=True)
    loop = asyncio.get_running_loop()
    while await loop.run_in_executor(None, sys.stdin.readline):  # "report", until stdin closes
        lines = [
            f"state {index} {nacks} {digest(triples)}"
            for index, (nacks, triples) in sorted(states.items())
        ]
        print("\n".join([*lines, "reported"]), flush=True)
    for task in tasks:
        task.cancel()


# -- the figures (run by the benchmark runner) ------------------------------------------------


class ClientFleet:
    """Client processes holding `total` streams; what they print, as it comes."""

    def __init__(self, bench: Bench, kind: str, name: str, total: int, count: int) -> None:
        per = [total // count + (1 if i < total % count else 0) for i in range(count)]
        self.processes = [
            bench.processes.start(
                "-m", "bench.xds", "clients", kind, bench.target, name, str(n), stdin=True
            )
            for n in per
            if n
        ]
        self.marks: dict[tuple[str, str], list[float]] = {}
        self.states: dict[tuple[int, int], str] = {}
        self.nacks: dict[tuple[int, int], int] = {}
        self.reopened = 0
        self._ready = 0
        self.reports = 0
        self._changed = asyncio.Event()

    async def ready(self, timeout: float = 300) -> None:
        self._readers = [
            asyncio.create_task(self._read(i, p)) for i, p in enumerate(self.processes)
        ]
        if not await self.wait_for(lambda: self._ready == len(self.processes), timeout):
            raise TimeoutError(f"the client streams did not all open within {timeout}s")

    async def _read(self, number: int, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        while line := await asyncio.to_thread(process.stdout.readline):
            kind, *fields = line.split()
            if kind == "ready":
                self._ready += 1
                self.reopened += int(fields[0])
            elif kind in ("seen", "gone"):
                self.marks.setdefault((kind, fields[0]), []).append(float(fields[1]))
            elif kind == "state":
                stream = (number, int(fields[0]))
                self.nacks[stream] = int(fields[1])
                self.states[stream] = fields[2]
            elif kind == "reported":
                self.reports += 1
            self._changed.set()
            self._changed = asyncio.Event()
        self._changed.set()  # a client process ended: whoever waits looks again

    async def wait_for(self, predicate: Any, timeout: float) -> bool:
        """Waits until `predicate()` holds; False after the timeout."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                while not predicate():
                    await self._changed.wait()
                return True
        return False

    async def last(self, kind: str, node_id: str, timeout: float = 30) -> float:
        done = lambda: len(self.marks.get((kind, node_id), ())) == len(self.processes)  # noqa: E731
        if not await self.wait_for(done, timeout):
            raise TimeoutError(f"not every client {kind} {node_id} within {timeout}s")
        return max(self.marks[(kind, node_id)])

    async def report(self, timeout: float = 30) -> None:
        """Asks every process for its streams' states and waits for them all."""
        wanted = self.reports + len(self.processes)
        for process in self.processes:
            assert process.stdin is not None
            process.stdin.write("report\n")
            process.stdin.flush()
        if not await self.wait_for(lambda: self.reports >= wanted, timeout):
            raise TimeoutError("the client processes did not report")

    def close(self) -> None:
        for process in self.processes:
            with contextlib.suppress(OSError):
                assert process.stdin is not None
                process.stdin.close()
            process.kill()
            process.wait()
        for reader in getattr(self, "_readers", []):
            reader.cancel()


async def _one_change(bench: Bench, fleet: ClientFleet, node_type: str) -> float:
    """Registers one node and times it until every client of the fleet has it; deregisters it
    and waits until every client lost it (the assignment stays small, as the WatchNodes deltas
    are)."""
    node_id = f"x{secrets.token_hex(4)}"
    started = time.monotonic()
    registered = await register_retrying(
        bench.stub,
        pb.RegisterRequest(
            node=pb.Node(id=node_id, type=node_type, datacenter="dc1", address="10.0.0.1:7000"),
            ttl_seconds=60,
        ),
    )
    latency = await fleet.last("seen", node_id) - started
    await bench.stub.Deregister(
        pb.DeregisterRequest(
            key=pb.NodeKey(datacenter="dc1", type=node_type, id=node_id), token=registered.token
        )
    )
    await fleet.last("gone", node_id)
    return latency


async def xds_fanout(bench: Bench, clients: int) -> None:
    """Both fleets open at once, each on a node type of its own; the changes alternate between
    them, so that both are measured through the same moments of a noisy machine."""
    changes, count = bench.config["changes"], bench.config["processes"]
    print(f"xDS fan-out to {clients} clients ({changes} changes)", flush=True)
    types = {"xds": f"{FANOUT_TYPE}-x", "watch": f"{FANOUT_TYPE}-w"}
    fleets = {kind: ClientFleet(bench, kind, types[kind], clients, count) for kind in types}
    figures: dict[str, list[float]] = {kind: [] for kind in types}
    try:
        for fleet in fleets.values():
            await fleet.ready()
        for i in range(changes):
            for kind in ("xds", "watch") if i % 2 else ("watch", "xds"):
                figures[kind].append(await _one_change(bench, fleets[kind], types[kind]))
    finally:
        for fleet in fleets.values():
            fleet.close()
    for q in (50, 99):
        bench.results.add(
            f"change->last of {clients} xDS clients updated p{q}",
            percentile(figures["xds"], q) * 1000,
            "ms",
            f"{clients} WatchNodes subscribers",
            percentile(figures["watch"], q) * 1000,
            clients=clients,
            changes=changes,
            opens_shed_and_retried=fleets["xds"].reopened,
        )
    ours, base = percentile(figures["xds"], 99), percentile(figures["watch"], 99)
    if clients >= 1000:
        bench.results.goal(
            f"change->last of {clients:,} xDS clients p99 <= 1.2x {clients:,} WatchNodes "
            "subscribers",
            ours <= 1.2 * base,
            f"{ours * 1000:.1f} vs {base * 1000:.1f} ms: {ours / base:.2f}x",
        )


async def _churn_once(
    bench: Bench, pool: dict[str, pb.RegisterResponse], rng: random.Random, serial: int
) -> None:
    """One change: a node joins, changes (weight, zone, DRAINING) or leaves."""
    if pool and (len(pool) >= POOL_NODES or rng.random() < 0.4):
        node_id = rng.choice(sorted(pool))
        registered = pool[node_id]
        if rng.random() < 0.5:
            del pool[node_id]
            await bench.stub.Deregister(
                pb.DeregisterRequest(
                    key=pb.NodeKey(datacenter="dc1", type=CHURN_TYPE, id=node_id),
                    token=registered.token,
                )
            )
            return
        node = pb.Node()
        node.CopyFrom(registered.node)
        node.metadata["weight"] = str(rng.randint(1, 5))
        node.metadata["zone"] = rng.choice("abc")
        node.status = rng.choice([pb.NODE_STATUS_UP, pb.NODE_STATUS_UP, pb.NODE_STATUS_DRAINING])
        node.incarnation = 0
        pool[node_id] = await register_retrying(
            bench.stub, pb.RegisterRequest(node=node, ttl_seconds=3600, token=registered.token)
        )
        pool[node_id].token = registered.token
        return
    node_id = f"c{serial}"
    pool[node_id] = await register_retrying(
        bench.stub,
        pb.RegisterRequest(
            node=pb.Node(
                id=node_id,
                type=CHURN_TYPE,
                datacenter="dc1",
                address=f"10.1.{serial % 250}.{serial % 200 + 1}:7000",
                metadata={"zone": rng.choice("abc")},
            ),
            ttl_seconds=3600,
        ),
    )


async def xds_churn(bench: Bench, clients: int, changes: int, burst: int = 100) -> None:
    """`changes` changes in bursts of `burst`, one after another; after each burst, every
    client's endpoint set must equal the registry's view (a LINEARIZABLE GetNodes)."""
    print(f"xDS churn: {changes} changes, {clients} clients", flush=True)
    fleet = ClientFleet(bench, "xds-report", CHURN_TYPE, clients, bench.config["processes"])
    rng = random.Random(23)
    pool: dict[str, pb.RegisterResponse] = {}
    quiet: list[float] = []
    mismatched = 0
    started = time.monotonic()
    try:
        await fleet.ready()
        serial = 0
        for _ in range(max(1, changes // burst)):
            for _ in range(burst):  # one at a time: each its own revision
                serial += 1
                await _churn_once(bench, pool, rng, serial)
            view = await bench.stub.GetNodes(pb.GetNodesRequest(scope=pb.Scope(types=[CHURN_TYPE])))
            expected = view_digest([n for dc in view.datacenters for n in dc.nodes])
            burst_done = time.monotonic()
            converged = False
            while not converged and time.monotonic() - burst_done < 30:
                await fleet.report()
                converged = len(fleet.states) == clients and all(
                    state == expected for state in fleet.states.values()
                )
                if not converged:
                    await asyncio.sleep(0.05)  # the clients are still applying: ask again
            quiet.append(time.monotonic() - burst_done)
            mismatched += not converged
    finally:
        fleet.close()
    nacks = sum(fleet.nacks.values())
    bench.results.add(
        f"{changes} changes with {clients} xDS clients: converged after each quiet period, p99",
        percentile(quiet, 99) * 1000,
        "ms",
        clients=clients,
        changes=changes,
        bursts=len(quiet),
        bursts_not_converged=mismatched,
        nacks=nacks,
        seconds=round(time.monotonic() - started, 1),
    )
    bench.results.goal(
        f"{changes:,} changes with {clients} xDS clients: every endpoint set equals the "
        "registry's view after each quiet period; 0 NACKs",
        mismatched == 0 and nacks == 0,
        f"{len(quiet) - mismatched}/{len(quiet)} bursts converged, {nacks} NACKs",
    )


async def xds_figures(bench: Bench, only: str = "") -> None:
    """Every xDS row at the profile's sizes (`bench.config["xds"]`), on the main frontend (one
    worker); `only`: "fanout" or "churn"."""
    sizes = bench.config["xds"]
    if only in ("", "fanout"):
        await xds_fanout(bench, sizes["clients"])
    if only in ("", "churn"):
        await xds_churn(bench, sizes["churn_clients"], sizes["churn_changes"])


if __name__ == "__main__":
    if len(sys.argv) != 6 or sys.argv[1] != "clients":
        raise SystemExit(
            "usage: python -m bench.xds clients KIND TARGET NAME STREAMS "
            "(the xDS rows: python -m bench.run [--quick] --only xds,xds-churn)"
        )
    asyncio.run(clients_main(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])))
