"""The sidecar's checks (`noderegistry register ... --check grpc://127.0.0.1:9600`): probes run
beside the service, in its pod or on its host, and the node's health reported through its own
registration (docs/design.md §13).

A service in any language gets registered, renewed and checked with no code of ours in it: the
check runs here, counted with the same thresholds as the registry's own checks
(registry_service/core/check_state.py), with the same probes (registry_service/probes/), and a
change of health is one Register of the registration's owner (`Registration.update`), which
the registry damps like any other flip. A report that does not reach the registry (no frontend
answers) is sent again on the next probe until it does.

URLs: `grpc://host:port[/service]` (grpc.health.v1; SERVING passes), `http://host:port[/path]`
(a 2xx passes), `tcp://host:port` (a connection passes).
"""

from __future__ import annotations

import asyncio
import urllib.parse
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import client_sdk
from registry_service.core.check_state import CheckState, ProbeResult, combined
from registry_service.domain import Check, CheckKind, Health
from registry_service.probes import NetworkProber

_KINDS = {"grpc": CheckKind.GRPC, "http": CheckKind.HTTP, "tcp": CheckKind.TCP}
USER_AGENT = "noderegistry-sidecar"


class CheckUrlError(ValueError):
    """A --check URL that does not name a check; the message says what is wrong."""


@dataclass(frozen=True)
class LocalCheck:
    """One check of the sidecar: what to probe (`check`) and where (`target`, host:port)."""

    url: str
    check: Check
    target: str


def parse_check_url(url: str) -> tuple[CheckKind, str, str]:
    """(kind, host:port, service or path) of a --check URL.

    Raises:
        CheckUrlError: not grpc://, http:// or tcp:// with a host and a port.
    """
    parts = urllib.parse.urlsplit(url)
    kind = _KINDS.get(parts.scheme)
    if kind is None:
        raise CheckUrlError(
            f"{url!r}: a check is grpc://host:port[/service], http://host:port[/path] or "
            "tcp://host:port"
        )
    try:
        port = parts.port
    except ValueError:
        port = None
    if not parts.hostname or port is None:
        raise CheckUrlError(
            f"{url!r}: give the host and the port, e.g. {parts.scheme}://127.0.0.1:9600"
        )
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    target = f"{host}:{port}"
    if kind is CheckKind.TCP:
        if parts.path not in ("", "/") or parts.query:
            raise CheckUrlError(f"{url!r}: a TCP check takes no path")
        return kind, target, ""
    if kind is CheckKind.GRPC:
        if parts.query:
            raise CheckUrlError(f"{url!r}: a gRPC check takes a service name, not a query")
        return kind, target, parts.path.strip("/")
    path = parts.path or "/"
    return kind, target, f"{path}?{parts.query}" if parts.query else path


def local_checks(
    urls: Sequence[str],
    *,
    interval_seconds: float,
    timeout_seconds: float,
    failures: int,
    passes: int,
) -> list[LocalCheck]:
    """The checks of the --check URLs, each with the given interval and thresholds.

    Raises:
        CheckUrlError: a URL that is not a check, or a timeout longer than the interval.
    """
    if timeout_seconds > interval_seconds:
        raise CheckUrlError(
            f"the timeout ({timeout_seconds:g}s) must not be longer than the interval "
            f"({interval_seconds:g}s)"
        )
    checks = []
    for url in urls:
        kind, target, detail = parse_check_url(url)
        check = Check(
            kind=kind,
            service=detail if kind is CheckKind.GRPC else "",
            path=detail if kind is CheckKind.HTTP else "/",
            interval_seconds=interval_seconds,
            timeout_seconds=timeout_seconds,
            failures_before_failing=failures,
            passes_before_passing=passes,
        )
        checks.append(LocalCheck(url, check, target))
    return checks


Report = Callable[[client_sdk.Health, str], Awaitable[bool]]


def _sdk(health: Health) -> client_sdk.Health:
    """The SDK's value of a health (the sidecar reports through the SDK)."""
    return client_sdk.Health(health.value)


class Sidecar:
    """Runs the local checks and reports each change of the node's health."""

    def __init__(self, checks: Sequence[LocalCheck], prober: NetworkProber | None = None) -> None:
        self._checks = list(checks)
        self._prober = prober or NetworkProber(USER_AGENT)
        self._states = [CheckState(local.check, None) for local in self._checks]
        self.health: Health | None = None

    async def _probe(self, index: int) -> ProbeResult:
        local = self._checks[index]
        return await self._prober.probe(local.check, local.target)

    async def first(self) -> tuple[client_sdk.Health, str]:
        """Probes every check once (before the node registers): the health it starts with, and
        what the probes said."""
        results = await asyncio.gather(*(self._probe(i) for i in range(len(self._checks))))
        for state, result in zip(self._states, results, strict=True):
            state.observe(result.passed)
        self.health = combined(self._states) or Health.FAILING
        return _sdk(self.health), _said(self._checks, results)

    async def run(self, report: Report) -> None:
        """Probes each check on its interval until cancelled; calls `report(health, output)`
        when the node's health changes, and again after each probe until a report succeeds
        (it returns True)."""
        reported = self.health
        loop = asyncio.get_running_loop()
        due = [loop.time() + local.check.interval_seconds for local in self._checks]
        try:
            while True:
                index = min(range(len(due)), key=due.__getitem__)
                await asyncio.sleep(max(0.0, due[index] - loop.time()))
                due[index] = loop.time() + self._checks[index].check.interval_seconds
                result = await self._probe(index)
                self._states[index].observe(result.passed)
                health = combined(self._states) or Health.FAILING
                if health is not self.health:
                    self.health = health
                    self._output = f"{self._checks[index].url}: {result.output}"
                if self.health is not reported and await report(_sdk(self.health), self._output):
                    reported = self.health
        finally:
            await self._prober.close()

    _output = ""


def _said(checks: Sequence[LocalCheck], results: Sequence[ProbeResult]) -> str:
    return "; ".join(
        f"{local.url}: {result.output}" for local, result in zip(checks, results, strict=True)
    )
