"""Shared pieces of the SDK's integration tests."""

from __future__ import annotations

from client_sdk import ClientConfig, Node

# Quick retries, so that failovers and re-registrations happen within a test's patience.
FAST = ClientConfig(call_timeout_seconds=3, retry_initial_seconds=0.05, retry_max_seconds=0.5)


def data_node(node_id: str, **metadata: str) -> Node:
    return Node(node_id, "data", "dc1", f"{node_id}.example:7000", metadata)
