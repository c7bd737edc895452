"""The SDK refuses what it can check itself with InvalidArgumentError, before anything is sent.

The client points at a port where nothing listens: a check that let a call through would end in
RegistryUnavailableError instead.
"""

from __future__ import annotations

import pytest

from client_sdk import (
    ClientConfig,
    InvalidArgumentError,
    Node,
    NodeStatus,
    RegistryClient,
    Scope,
    StatusCode,
    SyncRegistryClient,
    WatchConfig,
)
from client_sdk._validation import TTL_MAX_SECONDS, check_node, check_ttl

NOWHERE = "127.0.0.1:1"
FAST = ClientConfig(call_timeout_seconds=1)
GOOD = Node("data-1", "data", "dc1", "10.0.0.5:9600")


@pytest.mark.parametrize("ttl", [-1, TTL_MAX_SECONDS + 1, 2.5, "10", True])
async def test_register_refuses_a_ttl_out_of_range_or_not_whole_seconds(ttl):
    async with RegistryClient(NOWHERE, config=FAST) as client:
        with pytest.raises(InvalidArgumentError, match="ttl_seconds") as refused:
            await client.register(GOOD, ttl_seconds=ttl)
    assert refused.value.code is StatusCode.INVALID_ARGUMENT
    assert not isinstance(refused.value, ValueError)


@pytest.mark.parametrize(
    ("node", "field"),
    [
        (Node("", "data", "dc1", "h:1"), "id"),
        (Node("n", "", "dc1", "h:1"), "type"),
        (Node("n", "data", "", "h:1"), "datacenter"),
        (Node("n", "data", "dc1", ""), "address"),
        (Node("n", "data", "dc1", "h:1", {"zone": 3}), "metadata"),  # type: ignore[dict-item]
        (Node("n", "data", "dc1", "h:1", status=NodeStatus.SUSPECT), "SUSPECT"),
        (Node("n", "data", "dc1", "h:1", status=NodeStatus.OUT_OF_SERVICE), "OUT_OF_SERVICE"),
        ("data-1", "client_sdk.Node"),
    ],
)
async def test_register_refuses_a_node_missing_a_field_or_carrying_what_the_wire_cannot(
    node, field
):
    async with RegistryClient(NOWHERE, config=FAST) as client:
        with pytest.raises(InvalidArgumentError, match=field):
            await client.register(node)


async def test_reads_and_watches_refuse_a_bad_scope_or_consistency():
    async with RegistryClient(NOWHERE, config=FAST) as client:
        with pytest.raises(InvalidArgumentError, match=r"scope\.types"):
            await client.get_nodes(Scope.of(types=("data", "")))
        with pytest.raises(InvalidArgumentError, match="consistency"):
            await client.get_nodes(consistency="CACHED")  # type: ignore[arg-type]
        with pytest.raises(InvalidArgumentError, match="scope"):
            await client.watch_nodes("dc1")  # type: ignore[arg-type]


@pytest.mark.parametrize("targets", ["", " , ", []])
def test_a_client_needs_a_target(targets):
    with pytest.raises(InvalidArgumentError, match="at least one registry frontend"):
        RegistryClient(targets)


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"call_timeout_seconds": 0}, "call_timeout_seconds"),
        ({"retry_initial_seconds": -1}, "retry_initial_seconds"),
        ({"retry_initial_seconds": 2, "retry_max_seconds": 1}, "retry_max_seconds"),
        ({"tls_ca_file": "ca.pem", "tls_cert_file": "c.pem"}, "tls_key_file"),
        ({"tls_cert_file": "c.pem", "tls_key_file": "k.pem"}, "tls_ca_file"),
    ],
)
def test_client_config_refuses_values_out_of_range(values, field):
    with pytest.raises(InvalidArgumentError, match=f"ClientConfig.{field}"):
        ClientConfig(**values)


@pytest.mark.parametrize(
    "field", ["shrink_ratio", "shrink_min_nodes", "shrink_hold_seconds", "ack_interval_seconds"]
)
def test_watch_config_refuses_negative_values(field):
    with pytest.raises(InvalidArgumentError, match=f"WatchConfig.{field}"):
        WatchConfig(**{field: -1})


def test_an_unreadable_tls_file_is_named(tmp_path):
    missing = tmp_path / "ca.pem"
    with pytest.raises(InvalidArgumentError, match="tls_ca_file: cannot read"):
        RegistryClient(NOWHERE, config=ClientConfig(tls_ca_file=str(missing)))


def test_the_sync_facade_refuses_the_same_arguments():
    with (
        SyncRegistryClient(NOWHERE, config=FAST) as client,
        pytest.raises(InvalidArgumentError, match="ttl_seconds"),
    ):
        client.register(GOOD, ttl_seconds=-1)
    with pytest.raises(InvalidArgumentError, match="at least one registry frontend"):
        SyncRegistryClient("")


def test_valid_arguments_pass_the_local_checks():
    check_ttl(0)
    check_ttl(TTL_MAX_SECONDS)
    check_node(Node("n", "data", "dc1", "h:1", {"zone": "a"}, status=NodeStatus.DRAINING))
