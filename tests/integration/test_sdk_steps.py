"""The SDK's raw stream for relays (`NodeWatch.steps()`) and its silence watchdog
(`WatchConfig.silence_timeout_seconds`): what the federation's followers are made of (D52)."""

from __future__ import annotations

import asyncio

import pytest

from client_sdk import RegistryClient, Scope, WatchClosedError, WatchConfig, WatchStepKind
from tests.support.proxy import TcpProxy
from tests.support.sdk import FAST, data_node
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration


async def test_steps_start_where_the_stream_stands_then_pass_every_message(start_frontend):
    frontend = await start_frontend()
    async with RegistryClient(frontend.address, config=FAST) as client:
        first = await client.register(data_node("s1"))
        watch = await client.watch_nodes(Scope.of("dc1"))
        await watch.wait_for(lambda nodes: len(nodes) == 1, timeout=5)
        steps = watch.steps()
        start = await anext(steps)
        assert start.kind is WatchStepKind.SNAPSHOT and start.revision == watch.revision
        assert start.nodes is not None and [n.id for n in start.nodes] == ["s1"]
        await first.close()
        delta = await anext(steps)
        while delta.kind is WatchStepKind.PROGRESS:
            delta = await anext(steps)
        assert delta.kind is WatchStepKind.DELTA and not delta.datacenter
        assert [(e.type.value, e.node.id) for e in delta.events] == [("REMOVED", "s1")]
        await watch.close()
        async with asyncio.timeout(5):  # the steps end with the watch
            remaining = [step.kind async for step in steps]
        assert WatchStepKind.DELTA not in remaining
        assert isinstance(watch.error, WatchClosedError)


async def test_a_silent_stream_is_abandoned_for_the_next_frontend(start_frontend):
    """1. two frontends; the watch's first target goes through a proxy;
    2. the proxy is blackholed: nothing passes, nothing closes;
    3. within the silence timeout the watch says INTERRUPTED and resumes on the second frontend,
       where a later change reaches it."""
    silent, other = await start_frontend(), await start_frontend()
    host, port = silent.address.rsplit(":", 1)
    proxy = TcpProxy(host, int(port))
    await proxy.start()
    config = WatchConfig(silence_timeout_seconds=1.5)
    try:
        async with RegistryClient([proxy.endpoint, other.address], config=FAST) as client:
            watch = await client.watch_nodes(config=config)
            steps = watch.steps()
            proxy.blackhole()
            kinds = []
            async for step in steps:
                kinds.append(step.kind)
                if step.kind is WatchStepKind.INTERRUPTED:
                    break
            assert kinds[0] is WatchStepKind.SNAPSHOT
            registration = await client.register(data_node("after"))
            await watch.wait_for(lambda nodes: "after" in {n.id for n in nodes}, timeout=10)
            assert watch.reconnects >= 1
            await registration.close()
            await eventually(lambda: not len(watch.current()), message="removal seen")
            steps.close()
    finally:
        await proxy.close()
