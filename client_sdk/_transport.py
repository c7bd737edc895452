"""Channels to the registry's frontends, and failover between them.

Targets are tried in order: the current one serves every call until it is unavailable, then the
next one does. A single `dns:///name:port` target is handed to grpc with round-robin balancing over
the addresses the name resolves to.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import grpc
import grpc.aio
from noderegistry.v1 import registry_pb2_grpc

from client_sdk._config import ClientConfig
from client_sdk._errors import RegistryUnavailableError, from_rpc_error

log = logging.getLogger("client_sdk")

FAILOVER_CODES = frozenset({grpc.StatusCode.UNAVAILABLE})
_SERVICE_CONFIG = json.dumps({"loadBalancingConfig": [{"round_robin": {}}]})


def parse_targets(targets: str | Sequence[str]) -> list[str]:
    if isinstance(targets, str):
        targets = targets.split(",")
    parsed = [target.strip() for target in targets if target.strip()]
    if not parsed:
        raise ValueError("at least one registry frontend address is required")
    return parsed


class Transport:
    def __init__(self, targets: str | Sequence[str], config: ClientConfig) -> None:
        self.targets = parse_targets(targets)
        self.config = config
        self._index = 0
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._credentials = self._load_credentials(config)
        self.metadata: tuple[tuple[str, str], ...] = (
            (("authorization", f"Bearer {config.bearer_token}"),) if config.bearer_token else ()
        )

    @staticmethod
    def _load_credentials(config: ClientConfig) -> grpc.ChannelCredentials | None:
        if not config.tls_ca_file:
            return None
        return grpc.ssl_channel_credentials(
            root_certificates=Path(config.tls_ca_file).read_bytes(),
            private_key=Path(config.tls_key_file).read_bytes() if config.tls_key_file else None,
            certificate_chain=(
                Path(config.tls_cert_file).read_bytes() if config.tls_cert_file else None
            ),
        )

    @property
    def target(self) -> str:
        return self.targets[self._index % len(self.targets)]

    def channel(self, target: str | None = None) -> grpc.aio.Channel:
        target = target or self.target
        channel = self._channels.get(target)
        if channel is None:
            options: list[tuple[str, Any]] = [
                ("grpc.keepalive_time_ms", 20_000),
                ("grpc.keepalive_timeout_ms", 10_000),
                ("grpc.initial_reconnect_backoff_ms", 200),
                ("grpc.max_reconnect_backoff_ms", 2_000),
            ]
            if target.startswith("dns:"):
                options.append(("grpc.service_config", _SERVICE_CONFIG))
            if self._credentials is not None:
                channel = grpc.aio.secure_channel(target, self._credentials, options)
            else:
                channel = grpc.aio.insecure_channel(target, options)
            self._channels[target] = channel
        return channel

    def stub(self, target: str | None = None) -> registry_pb2_grpc.RegistryStub:
        return registry_pb2_grpc.RegistryStub(self.channel(target))

    def fail_over(self, failed_target: str) -> None:
        """Moves to the next target, unless another caller already moved away from failed_target."""
        if len(self.targets) > 1 and self.target == failed_target:
            self._index += 1
            log.info("registry frontend %s unavailable; using %s", failed_target, self.target)

    async def unary(self, method: str, request: Any) -> Any:
        """Calls a unary RPC on the current frontend, failing over to the next ones in turn.

        Only calls that are safe to repeat go through here (Register always carries an
        idempotency key).

        Raises:
            RegistryRPCError: the subclass for the status; RegistryUnavailableError when no
                frontend could be reached.
        """
        last: grpc.aio.AioRpcError | None = None
        for _ in range(len(self.targets)):
            target = self.target
            try:
                return await getattr(self.stub(target), method)(
                    request, timeout=self.config.call_timeout_seconds, metadata=self.metadata
                )
            except grpc.aio.AioRpcError as err:
                if err.code() not in FAILOVER_CODES:
                    raise from_rpc_error(err, target) from err
                last = err
                self.fail_over(target)
        assert last is not None
        raise RegistryUnavailableError(
            last.code(),
            f"no registry frontend answered ({', '.join(self.targets)}): {last.details()}",
        ) from last

    async def close(self) -> None:
        for channel in self._channels.values():
            await channel.close()
        self._channels.clear()
