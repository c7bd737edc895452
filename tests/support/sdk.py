"""Shared pieces of the SDK's integration tests."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from client_sdk import ClientConfig, Node, NodeEvent, WatchStep, WatchStepKind

# Quick retries, so that failovers and re-registrations happen within a test's patience.
FAST = ClientConfig(call_timeout_seconds=3, retry_initial_seconds=0.05, retry_max_seconds=0.5)


def data_node(node_id: str, **metadata: str) -> Node:
    return Node(node_id, "data", "dc1", f"{node_id}.example:7000", metadata)


async def collect(stream: AsyncIterator[NodeEvent], into: list[NodeEvent]) -> None:
    """Appends every event of a watch's `events()` until it ends (run it as a task)."""
    async for event in stream:
        into.append(event)


async def resumed_about(
    steps: AsyncIterator[WatchStep], registry: str, timeout: float = 60
) -> WatchStep:
    """The first step about `registry` ("": the frontend's own etcd; a whole list counts) after
    the watch's stream broke: what the next frontend said first."""
    async with asyncio.timeout(timeout):
        async for step in steps:
            if step.kind is WatchStepKind.INTERRUPTED:
                break
        async for step in steps:
            if step.datacenter == registry or (
                step.kind is WatchStepKind.SNAPSHOT and not step.datacenter
            ):
                return step
    raise AssertionError("the watch ended before it resumed")
