"""The etcd store on real etcd keeps the store port's contract: the checks of
tests/support/store_contract.py, which the in-memory store of the use cases' unit tests also
passes. A semantics of etcd that the fake lost shows here and there at once."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from registry_service.process.embedded_etcd import EtcdServer
from registry_service.store.etcd import EtcdRegistryStore
from registry_service.store.etcd_client import EtcdClient, EtcdConfig
from registry_service.store.etcd_control import EtcdControlStore
from tests.support.store_contract import CHECKS, Check, Harness

pytestmark = pytest.mark.integration


@pytest.fixture
async def etcd_store(own_etcd: EtcdServer) -> AsyncIterator[Harness]:
    """The etcd store on an etcd of its own (one check compacts it)."""
    client = EtcdClient(EtcdConfig(endpoints=(own_etcd.endpoint,)))
    store = EtcdRegistryStore(client, "/noderegistry/contract/", "contract")
    control = EtcdControlStore(client, store.keys, store.audit)
    yield Harness(store, control, store.revoke_lease, client.kv.compact)
    await client.close()


@pytest.mark.parametrize("check", CHECKS, ids=[check.__name__ for check in CHECKS])
async def test_the_etcd_store_keeps_the_store_contract(etcd_store: Harness, check: Check):
    await check(etcd_store)
