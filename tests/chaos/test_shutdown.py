"""W3 (docs/reliability.md): a frontend's shutdown never touches registrations. SIGTERMed while
nodes renew through it, watchers read from it and other nodes register, it exits 0 within its
shutdown grace (+ 2 s to exit), its streams end with UNAVAILABLE, its watchers resume on the
other frontend with every change exactly once (W1, checked against etcd's history), its KeepAlive
clients move over, and no node is removed or registered anew."""

from __future__ import annotations

import asyncio
import contextlib
import time

import grpc
import pytest
from noderegistry.v1 import registry_pb2 as pb
from noderegistry.v1 import registry_pb2_grpc

from client_sdk import Node, RegistrationState, RegistryClient
from tests.chaos.conftest import FLEET
from tests.support.history import ResumingWatcher
from tests.support.waiting import eventually

pytestmark = pytest.mark.chaos
TTL = 5
GRACE_SECONDS = 3.0


class EndingWatcher(ResumingWatcher):
    """A resuming watcher that notes how each stream ended."""

    def __init__(self, targets: list[str]) -> None:
        super().__init__(targets)
        self.endings: list[grpc.StatusCode] = []
        self.resumed_at = 0.0

    async def _run(self) -> None:
        turn = 0
        while True:
            target = self.targets[turn % len(self.targets)]
            turn += 1
            async with grpc.aio.insecure_channel(target) as channel:
                call = registry_pb2_grpc.RegistryStub(channel).WatchNodes(
                    pb.WatchNodesRequest(resume_revision=self.revision)
                )
                self.streams += 1
                try:
                    async for message in call:
                        if self.streams > 1 and not self.resumed_at:
                            self.resumed_at = time.monotonic()
                        self.messages.append(message)
                        self._apply(message)
                except grpc.aio.AioRpcError as err:
                    self.endings.append(err.code())
            await asyncio.sleep(0.1)  # as the SDK's backoff: the next frontend, shortly


async def _register_through(target: str, stop: asyncio.Event, added: list[int]) -> None:
    """New nodes, one after another, through the frontend that stays; `added[0]` counts them."""
    async with grpc.aio.insecure_channel(target) as channel:
        stub = registry_pb2_grpc.RegistryStub(channel)
        while not stop.is_set():
            node = pb.Node(id=f"new-{added[0]}", type="data", datacenter="dc1", address="x:1")
            await stub.Register(pb.RegisterRequest(node=node, ttl_seconds=60), timeout=5)
            added[0] += 1


@pytest.mark.timeout(180)
async def test_w3_a_frontend_stopping_mid_traffic_ends_its_streams_and_touches_no_node(rig):
    r = await rig(frontends=2, shutdown_grace_seconds=GRACE_SECONDS)
    doomed, staying = r.frontends
    # Watchers and KeepAlive clients start on the frontend that will stop.
    watchers = [EndingWatcher([doomed.address, staying.address]).start() for _ in range(3)]
    stop, added = asyncio.Event(), [0]
    async with RegistryClient([doomed.address, staying.address], config=FLEET) as client:
        fleet = [
            await client.register(
                Node(id=f"n{i}", type="data", datacenter="dc1", address=f"n{i}.x:7000"),
                ttl_seconds=TTL,
            )
            for i in range(12)
        ]
        for watcher in watchers:
            await eventually(lambda w=watcher: len(w.nodes) == 12, message="the fleet seen")
        writer = asyncio.create_task(_register_through(staying.address, stop, added))
        try:
            # 1. SIGTERM while changes flow: it exits 0 within the grace + 2 s (the wait's bound).
            await eventually(lambda: added[0] > 20, message="changes flowing")
            signalled = time.monotonic()
            code = await asyncio.to_thread(doomed.terminate, GRACE_SECONDS + 2)
            exited = time.monotonic() - signalled
            assert code == 0
            # 2. Its streams ended UNAVAILABLE; every watcher resumed on the other frontend.
            for watcher in watchers:
                await eventually(lambda w=watcher: w.resumed_at, message="resumed elsewhere")
                assert watcher.endings[:1] == [grpc.StatusCode.UNAVAILABLE]
            resumed = max(w.resumed_at for w in watchers) - signalled
            # 3. Changes keep coming; then no node removed, every one exactly once everywhere.
            stopped_at = added[0]
            await eventually(lambda: added[0] > stopped_at + 20, message="changes after the stop")
        finally:
            stop.set()
            with contextlib.suppress(asyncio.CancelledError):
                await writer
        await eventually(
            lambda: all(reg.state is RegistrationState.ACTIVE for reg in fleet),
            timeout=TTL,
            message="the fleet renews through the other frontend",
        )
        assert {reg.incarnation for reg in fleet} == {1}
        changes = await r.check_watchers(watchers)
        for watcher in watchers:
            assert watcher.removed() == []
        print(
            f"W3: exited 0 {exited:.2f} s after SIGTERM (grace {GRACE_SECONDS:g} s); watchers "
            f"resumed within {resumed:.2f} s; {changes} changes, each once at every watcher"
        )
    for watcher in watchers:
        await watcher.close()
