"""H3: fuzzed requests against a real frontend (hypothesis). Every rejected input gets a specific
status and a message, the registrations etcd holds for the cluster do not change, and the
frontend stays healthy with its memory bounded."""

from __future__ import annotations

import asyncio
import base64
import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from noderegistry.v1 import registry_pb2 as pb
from noderegistry.v1 import registry_pb2_grpc

from tests.support.frontends import FrontendProcess

pytestmark = pytest.mark.chaos
REJECTIONS = {
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.ALREADY_EXISTS,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
}
FUZZ = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

names = st.one_of(
    st.from_regex(r"[a-z0-9][a-z0-9._-]{0,70}", fullmatch=True),
    st.text(max_size=80),
)
metadata = st.dictionaries(st.text(min_size=0, max_size=140), st.text(max_size=1100), max_size=70)
nodes = st.builds(
    pb.Node,
    id=names,
    type=names,
    datacenter=names,
    address=st.one_of(st.from_regex(r"[a-z0-9.\[\]:]{0,40}", fullmatch=True), st.text(max_size=60)),
    metadata=metadata,
    incarnation=st.integers(min_value=-(2**63), max_value=2**63 - 1),
    status=st.sampled_from([0, 1, 2, 3, 99]),
)
keys = st.builds(pb.NodeKey, datacenter=names, type=names, id=names)


class Target:
    def __init__(self, process: FrontendProcess, etcd_endpoint: str, cluster: str) -> None:
        self.process = process
        self.channel = grpc.insecure_channel(process.address)
        self.stub = registry_pb2_grpc.RegistryStub(self.channel)
        self._etcd = etcd_endpoint
        self._prefix = f"/noderegistry/{cluster}/".encode()

    def stored(self) -> list[tuple[str, str]]:
        """The cluster's registrations as etcd holds them: every live, member and identity key
        with its mod revision. etcd's global revision is no measure here: the shared etcd also
        holds other tests' registrations, and their leases expire whenever they do."""
        body = json.dumps(
            {
                "key": base64.b64encode(self._prefix).decode(),
                "range_end": base64.b64encode(self._prefix[:-1] + b"0").decode(),
                "keys_only": True,
            }
        ).encode()
        request = urllib.request.Request(f"http://{self._etcd}/v3/kv/range", data=body)
        with urllib.request.urlopen(request, timeout=5) as response:
            kvs = json.loads(response.read()).get("kvs", [])
        kinds = tuple(self._prefix + kind for kind in (b"live/", b"members/", b"identity/"))
        return sorted(
            (kv["key"], kv["mod_revision"])
            for kv in kvs
            if base64.b64decode(kv["key"]).startswith(kinds)
        )

    def rss_kib(self) -> int:
        assert self.process.process is not None
        status = Path(f"/proc/{self.process.process.pid}/status").read_text()
        return int(
            next(line for line in status.splitlines() if line.startswith("VmRSS")).split()[1]
        )

    def rejected_without_a_write(self, call, request) -> None:  # type: ignore[no-untyped-def]
        before = self.stored()
        try:
            call(request, timeout=10)
        except grpc.RpcError as err:
            assert err.code() in REJECTIONS, (err.code(), err.details())
            assert err.details(), "a rejection says why"
            assert self.stored() == before, "a rejected request wrote to etcd"


@pytest.fixture(scope="module")
def target(etcd, tmp_path_factory) -> Iterator[Target]:  # type: ignore[no-untyped-def]
    from tests.conftest import TEST_SETTINGS

    cluster = "fuzz"
    flags = ["--etcd-endpoints", etcd.endpoint, "--cluster", cluster]
    for name, value in TEST_SETTINGS.items():
        flags += [f"--{name.replace('_', '-')}", str(value)]
    process = FrontendProcess(flags, tmp_path_factory.mktemp("fuzz") / "frontend.log")
    asyncio.run(process.start())
    target = Target(process, etcd.endpoint, cluster)
    target.rss_at_start = target.rss_kib()  # type: ignore[attr-defined]
    yield target
    target.channel.close()
    process.kill()


@FUZZ
@given(node=nodes, ttl=st.integers(min_value=0, max_value=2**32 - 1), key=st.text(max_size=200))
def test_h3_fuzzed_register(target: Target, node: pb.Node, ttl: int, key: str) -> None:
    request = pb.RegisterRequest(node=node, ttl_seconds=ttl, idempotency_key=key)
    target.rejected_without_a_write(target.stub.Register, request)


@FUZZ
@given(key=keys, token=st.text(max_size=300))
def test_h3_fuzzed_deregister_and_keepalive(target: Target, key: pb.NodeKey, token: str) -> None:
    target.rejected_without_a_write(
        target.stub.Deregister, pb.DeregisterRequest(key=key, token=token)
    )
    before = target.stored()
    responses = list(
        target.stub.KeepAlive(iter([pb.KeepAliveRequest(key=key, token=token)] * 3), timeout=10)
    )
    assert len(responses) == 3 and all(r.code != 0 and r.message for r in responses)
    assert target.stored() == before


@FUZZ
@given(
    datacenters=st.lists(names, max_size=5),
    types=st.lists(names, max_size=5),
    consistency=st.sampled_from([0, 1, 2, 7]),
    resume=st.integers(min_value=-(2**63), max_value=2**63 - 1),
)
def test_h3_fuzzed_reads(
    target: Target, datacenters: list[str], types: list[str], consistency: int, resume: int
) -> None:
    scope = pb.Scope(datacenters=datacenters, types=types)
    target.rejected_without_a_write(
        target.stub.GetNodes, pb.GetNodesRequest(scope=scope, consistency=consistency)
    )
    stream = target.stub.WatchNodes(
        pb.WatchNodesRequest(scope=scope, resume_revision=resume), timeout=10
    )
    try:
        first = next(stream)
        assert first.WhichOneof("message") in {"snapshot", "delta", "progress"}
    except grpc.RpcError as err:
        assert err.code() in REJECTIONS, (err.code(), err.details())
    finally:
        stream.cancel()


def test_h3_after_the_fuzzing_the_frontend_is_healthy_and_bounded(target: Target) -> None:
    health = health_pb2_grpc.HealthStub(target.channel)
    assert health.Check(health_pb2.HealthCheckRequest()).status == (
        health_pb2.HealthCheckResponse.SERVING
    )
    grown = target.rss_kib() - target.rss_at_start  # type: ignore[attr-defined]
    print(f"H3: frontend RSS grew {grown} KiB over the fuzzing")
    assert grown < 100 * 1024
