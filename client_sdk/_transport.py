"""Channels to the registry's frontends, and failover between them.

Targets are tried in order: the current one serves every call until it is unavailable, then the
next one does. A single `dns:///name:port` target is handed to grpc with round-robin balancing over
the addresses the name resolves to. With a registry per datacenter (federation), `Transports`
keeps one `Transport` per datacenter's frontends.
"""

from __future__ import annotations

import json
import logging
import ssl
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import grpc
import grpc.aio
from noderegistry.v1 import registry_pb2_grpc

from client_sdk._config import ClientConfig
from client_sdk._errors import (
    RegistryRPCError,
    RegistryUnavailableError,
    StatusCode,
    error_for,
    invalid_argument,
)
from client_sdk._tls_probe import diagnose, looks_like_tls

try:
    from opentelemetry import propagate as _propagate
except ImportError:  # optional: traces follow calls only where opentelemetry is installed
    _propagate = None  # type: ignore[assignment]

log = logging.getLogger("client_sdk")

_SERVICE_CONFIG = json.dumps({"loadBalancingConfig": [{"round_robin": {}}]})
_PROBE_SECONDS = 3.0  # the diagnosing handshake after a failed call (_tls_probe)


def error_from_rpc(
    err: grpc.aio.AioRpcError, target: str = "", deadline_seconds: float = 0.0
) -> RegistryRPCError:
    """The one place where grpc's errors become the SDK's (raise it `from err`).

    UNAVAILABLE names the frontend; a deadline that ran out on this side (grpc says only
    "Deadline Exceeded") says which frontend gave no answer within how long, so that an etcd
    outage behind a frontend never reads as a bare DEADLINE_EXCEEDED.
    """
    code = StatusCode(err.code().value[0])
    details = one_line(err.details() or code.name)
    if code is StatusCode.UNAVAILABLE and target:
        details = f"{details} (frontend {target})"
    elif code is StatusCode.DEADLINE_EXCEEDED and target and deadline_seconds > 0:
        details = (
            f"{details}: no answer from frontend {target} within {deadline_seconds:g}s "
            "(the registry or its etcd may be unavailable)"
        )
    return error_for(code, details, retry_after_seconds=_pushback_seconds(err))


def one_line(text: str) -> str:
    """Whitespace folded: a log line or an error message never spans lines (grpc's can)."""
    return " ".join(text.split())


def _pushback_seconds(err: grpc.aio.AioRpcError) -> float | None:
    """When to retry, from the `grpc-retry-pushback-ms` trailing metadata (gRPC's pushback)."""
    for key, value in err.trailing_metadata() or ():
        if key == "grpc-retry-pushback-ms":
            try:
                return max(0.0, int(value) / 1000)
            except (TypeError, ValueError):
                return None
    return None


def parse_targets(targets: str | Sequence[str]) -> list[str]:
    names = targets.split(",") if isinstance(targets, str) else targets
    parsed = [name.strip() for name in names if isinstance(name, str) and name.strip()]
    if not parsed:
        raise invalid_argument(
            f"targets: at least one registry frontend address (host:port) is required, "
            f"not {targets!r}"
        )
    return parsed


def _read(setting: str, path: str) -> bytes | None:
    if not path:
        return None
    try:
        return Path(path).read_bytes()
    except OSError as err:
        raise invalid_argument(
            f"ClientConfig.{setting}: cannot read {path!r} ({err.strerror})"
        ) from err


def _check_pair(cert_file: str, key_file: str) -> None:
    """A certificate and a key that do not belong together, refused.

    Said here, before grpc prints lines of its own about an invalid private key and fails every
    call.
    """
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_cert_chain(
            cert_file, key_file, password=lambda: ""
        )
    except OSError as err:
        raise invalid_argument(
            f"ClientConfig.tls_cert_file: cannot read {cert_file!r} or {key_file!r} "
            f"({err.strerror})"
        ) from err
    except ssl.SSLError as err:
        reason = (err.reason or "unreadable").replace("_", " ").lower()
        raise invalid_argument(
            f"ClientConfig.tls_cert_file {cert_file!r} and tls_key_file {key_file!r} are not a "
            f"PEM certificate and its unencrypted key ({reason})"
        ) from err


class Transport:
    def __init__(self, targets: str | Sequence[str], config: ClientConfig, name: str = "") -> None:
        """`name`: the datacenter whose registry these frontends are ("" when not told)."""
        self.targets = parse_targets(targets)
        self.name = name
        self.config = config
        self._index = 0
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._credentials = self._load_credentials(config)
        self._auth: tuple[tuple[str, str], ...] = (
            (("authorization", f"Bearer {config.bearer_token}"),) if config.bearer_token else ()
        )

    @property
    def metadata(self) -> tuple[tuple[str, str], ...]:
        """What every call sends: the bearer token, and the caller's trace context.

        The trace context (W3C `traceparent`) goes only when opentelemetry is installed; the SDK
        does not require it.
        """
        if _propagate is None:
            return self._auth
        carrier: dict[str, str] = {}
        _propagate.inject(carrier)
        return self._auth + tuple(carrier.items())

    @staticmethod
    def _load_credentials(config: ClientConfig) -> grpc.ChannelCredentials | None:
        if not config.tls_ca_file:
            return None
        if config.tls_cert_file:
            _check_pair(config.tls_cert_file, config.tls_key_file)
        return grpc.ssl_channel_credentials(
            root_certificates=_read("tls_ca_file", config.tls_ca_file),
            private_key=_read("tls_key_file", config.tls_key_file),
            certificate_chain=_read("tls_cert_file", config.tls_cert_file),
        )

    @property
    def target(self) -> str:
        return self.targets[self._index % len(self.targets)]

    def _channel(self, target: str) -> grpc.aio.Channel:
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

    def stub(self, target: str) -> registry_pb2_grpc.RegistryStub:
        return registry_pb2_grpc.RegistryStub(self._channel(target))

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
        last_target = self.target
        for _ in range(len(self.targets)):
            target = last_target = self.target
            try:
                return await getattr(self.stub(target), method)(
                    request, timeout=self.config.call_timeout_seconds, metadata=self.metadata
                )
            except grpc.aio.AioRpcError as err:
                error = error_from_rpc(err, target, self.config.call_timeout_seconds)
                if error.code is not StatusCode.UNAVAILABLE:  # only UNAVAILABLE fails over
                    raise error from err
                last = err
                self.fail_over(target)
        assert last is not None
        unavailable = RegistryUnavailableError(
            StatusCode.UNAVAILABLE,
            f"no registry frontend answered ({', '.join(self.targets)}): "
            f"{one_line(last.details() or '')}",
        )
        raise await self.explain(unavailable, last_target) from last

    async def explain(self, error: RegistryRPCError, target: str) -> RegistryRPCError:
        """`error`, or the TlsError that says why `target` could not be reached.

        The TlsError when the failure looks like a TLS one and a handshake of the SDK's own
        finds the cause.
        """
        if error.code is not StatusCode.UNAVAILABLE or not looks_like_tls(error.message):
            return error
        timeout = min(self.config.call_timeout_seconds, _PROBE_SECONDS)
        found = await diagnose(target, self.config, timeout)
        if found is None:
            return error
        log.debug("TLS with %s: %s (grpc: %s)", target, found.message, error.message)
        return found

    async def close(self) -> None:
        for channel in self._channels.values():
            await channel.close()
        self._channels.clear()


Targets = str | Sequence[str] | Mapping[str, str | Sequence[str]]
"""Frontend addresses: one list for the registry, or per datacenter (federation)."""


class Transports:
    """The frontends of every datacenter's registry, or of the one registry.

    Built from a mapping of datacenter -> targets, or from a list. `home` serves reads, watches
    and datacenters not in the mapping.
    """

    def __init__(
        self,
        targets: Targets,
        config: ClientConfig,
        home_datacenter: str = "",
    ) -> None:
        self._by_datacenter: dict[str, Transport] = {}
        if not isinstance(targets, Mapping):
            if home_datacenter:
                raise invalid_argument(
                    "home_datacenter needs targets per datacenter ({datacenter: [host:port]})"
                )
            self.home = Transport(targets, config)
            return
        if not targets:
            raise invalid_argument("targets: the mapping of datacenter -> frontends is empty")
        for datacenter, datacenter_targets in targets.items():
            if not isinstance(datacenter, str) or not datacenter:
                raise invalid_argument(f"targets: {datacenter!r} is not a datacenter name")
            self._by_datacenter[datacenter] = Transport(datacenter_targets, config, datacenter)
        home = home_datacenter or next(iter(self._by_datacenter))
        if home not in self._by_datacenter:
            raise invalid_argument(
                f"home_datacenter {home!r} is not one of the targets' datacenters "
                f"({', '.join(self._by_datacenter)})"
            )
        self.home = self._by_datacenter[home]

    def for_datacenter(self, datacenter: str) -> Transport:
        """The frontends of the datacenter's own registry, else the home datacenter's.

        When the home registry is not the node's, it answers naming the right one.
        """
        return self._by_datacenter.get(datacenter, self.home)

    async def close(self) -> None:
        for transport in {id(t): t for t in [self.home, *self._by_datacenter.values()]}.values():
            await transport.close()
