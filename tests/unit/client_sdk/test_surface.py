"""The SDK's public surface: it wraps every RPC, and exports exactly its curated names."""

from __future__ import annotations

import inspect
from pathlib import Path

from noderegistry.v1 import registry_pb2

import client_sdk
from client_sdk._client import RPC_COVERAGE

SDK = Path(client_sdk.__file__).parent


def test_the_sdk_wraps_every_rpc_of_the_service():
    service = registry_pb2.DESCRIPTOR.services_by_name["Registry"]
    rpcs = {method.name for method in service.methods}
    assert set(RPC_COVERAGE) == rpcs, "a new RPC needs an SDK method"
    source = "".join(path.read_text() for path in SDK.glob("*.py"))
    for rpc in rpcs:
        assert f'"{rpc}"' in source or f".{rpc}(" in source, f"the SDK never calls {rpc}"


def test_all_is_sorted_and_complete():
    # isort-style, as ruff keeps it: CONSTANTS first, then the rest, each group sorted.
    assert client_sdk.__all__ == sorted(client_sdk.__all__, key=lambda n: (not n.isupper(), n))
    for name in client_sdk.__all__:
        assert hasattr(client_sdk, name)
    public = {n for n in vars(client_sdk) if not n.startswith("_") and n[0].isupper()}
    assert public <= set(client_sdk.__all__)


def test_the_rpc_coverage_table_is_a_test_aid_not_public_api():
    assert "RPC_COVERAGE" not in client_sdk.__all__
    assert not hasattr(client_sdk, "RPC_COVERAGE")


def test_no_public_signature_mentions_grpc():
    for name in client_sdk.__all__:
        exported = getattr(client_sdk, name)
        members = [exported, *vars(exported).values()] if inspect.isclass(exported) else [exported]
        for member in members:
            member = getattr(member, "fget", member)  # properties: their getter
            if callable(member) and not inspect.isclass(member):
                annotations = str(getattr(member, "__annotations__", {}))
                assert "grpc" not in annotations, f"{name}.{member.__name__}: {annotations}"


def test_the_sdk_is_typed():
    assert (SDK / "py.typed").exists()
