"""OpenTelemetry tracing (the optional `[tracing]` extra): spans follow the SDK's calls into the
frontend and on to etcd, and each watch event's fan-out has its own span."""

from __future__ import annotations

import subprocess
import sys

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from client_sdk import Node, RegistryClient
from registry_service.telemetry import tracing
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration


@pytest.fixture
def exported():
    exporter = InMemorySpanExporter()
    tracing.enable(exporter)
    yield exporter
    tracing.disable()


async def test_a_register_span_is_the_child_of_the_sdk_callers_span(exported, start_frontend):
    frontend = await start_frontend()
    client_provider = TracerProvider()
    client_spans = InMemorySpanExporter()
    client_provider.add_span_processor(SimpleSpanProcessor(client_spans))
    async with RegistryClient(frontend.address) as client:
        with client_provider.get_tracer("test").start_as_current_span("deploy node") as caller:
            registration = await client.register(Node("t1", "data", "dc1", "10.0.0.1:1"))
        await registration.close()

    def spans_named(name: str) -> list:
        return [s for s in exported.get_finished_spans() if s.name == name]

    await eventually(
        lambda: spans_named("noderegistry.v1.Registry/Register"), message="Register span"
    )
    (register_span,) = spans_named("noderegistry.v1.Registry/Register")
    assert register_span.context.trace_id == caller.get_span_context().trace_id
    assert register_span.parent.span_id == caller.get_span_context().span_id
    assert register_span.attributes["rpc.method"] == "Register"
    etcd_txns = [
        s
        for s in spans_named("etcd txn")
        if s.parent and s.parent.span_id == register_span.context.span_id
    ]
    assert etcd_txns, "the Register span has an etcd txn span under it"
    await eventually(lambda: spans_named("watch event fan-out"), message="fan-out span")


def test_the_sdk_works_without_opentelemetry():
    blocked = (
        "import sys; sys.modules['opentelemetry'] = None\n"
        "from client_sdk._config import ClientConfig\n"
        "from client_sdk._transport import Transport\n"
        "t = Transport('127.0.0.1:1', ClientConfig(bearer_token='x'))\n"
        "assert t.metadata == (('authorization', 'Bearer x'),), t.metadata\n"
    )
    result = subprocess.run([sys.executable, "-c", blocked], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_tracing_without_the_extra_is_one_clear_error():
    blocked = (
        "import sys; sys.modules['opentelemetry.sdk'] = None\n"
        "from registry_service.telemetry import tracing\n"
        "try:\n"
        "    tracing.enable()\n"
        "except tracing.TracingUnavailableError as err:\n"
        "    print(err)\n"
    )
    result = subprocess.run([sys.executable, "-c", blocked], capture_output=True, text=True)
    assert "pip install 'node-registry[tracing]'" in result.stdout, result.stderr
    assert "REGISTRY_TRACING" in result.stdout
