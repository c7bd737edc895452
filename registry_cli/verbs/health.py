"""`health`: grpc.health.v1 Check on every endpoint, over the same TLS and token as other verbs.

grpc's health stubs come with grpcio-health-checking, which the SDK alone does not install (D31):
the `cli` extra (and the `server` extra) bring it.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path

import grpc
import grpc.aio

from registry_cli.errors import EXIT_FAILED, EXIT_OK, one_line
from registry_cli.options import ClientOptions
from registry_cli.output import dumps, emit
from registry_cli.verbs import Commands, client_verb

CLI_EXTRA_HINT = "pip install 'node-registry[cli]'"


def add_to(commands: Commands) -> None:
    """Adds `health` to the root parser."""
    parser = client_verb(
        commands,
        "health",
        "check each endpoint's gRPC health (exit 0 when every one is SERVING)",
        run_health,
    )
    parser.add_argument("--service", default="", help="service name (default: the server)")


@dataclass(frozen=True)
class Answer:
    """One endpoint's health: its status name, or why it could not be asked."""

    endpoint: str
    status: str = ""
    error: str = ""

    @property
    def serving(self) -> bool:
        """Whether the endpoint answered SERVING."""
        return self.status == "SERVING"


def _credentials(options: ClientOptions) -> grpc.ChannelCredentials | None:
    if not options.cacert:
        return None
    return grpc.ssl_channel_credentials(
        root_certificates=Path(options.cacert).read_bytes(),
        private_key=Path(options.key).read_bytes() if options.key else None,
        certificate_chain=Path(options.cert).read_bytes() if options.cert else None,
    )


async def _check(endpoint: str, options: ClientOptions, service: str) -> Answer:
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    credentials = _credentials(options)
    channel = (
        grpc.aio.secure_channel(endpoint, credentials)
        if credentials is not None
        else grpc.aio.insecure_channel(endpoint)
    )
    metadata = (("authorization", f"Bearer {options.token}"),) if options.token else ()
    async with channel:
        try:
            response = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service),
                timeout=options.timeout_seconds,
                metadata=metadata,
            )
        except grpc.aio.AioRpcError as err:
            details = one_line(err.details() or "")
            return Answer(endpoint, error=f"{err.code().name}: {details}")
    return Answer(
        endpoint, status=health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
    )


async def run_health(args: argparse.Namespace, options: ClientOptions) -> int:
    """`health`: asks every endpoint at once; exit 0 only when every one is SERVING."""
    if importlib.util.find_spec("grpc_health") is None:  # the `cli` or `server` extra (D31)
        print(f"error: health needs grpcio-health-checking: {CLI_EXTRA_HINT}", file=sys.stderr)
        return EXIT_FAILED
    answers = await asyncio.gather(
        *(_check(endpoint, options, args.service) for endpoint in options.endpoints)
    )
    if options.json:
        emit(
            dumps(
                {
                    "healthy": all(a.serving for a in answers),
                    "endpoints": [
                        {
                            "endpoint": a.endpoint,
                            "status": a.status or None,
                            "error": a.error or None,
                        }
                        for a in answers
                    ],
                },
                indent=2,
            )
        )
    else:
        for answer in answers:
            if answer.error:
                print(f"error: cannot check {answer.endpoint}: {answer.error}", file=sys.stderr)
            else:
                emit(f"{answer.endpoint} {answer.status}")
    return EXIT_OK if all(a.serving for a in answers) else EXIT_FAILED
