"""The supervisor's admin port: one scrape per host, whatever the number of workers (D17, D33).

With `serve --workers N` (N > 1) each worker serves its admin HTTP on a private loopback port
and the supervisor serves the configured admin address:

    GET /metrics             every worker's /metrics, fetched at once, each series labelled
                             worker="<i>" and merged family by family; plus the supervisor's own
                             process series (worker="supervisor") and noderegistry_worker_up
    GET /admin/subscribers   every worker's subscribers, each with its worker (what the other
                             frontends' cluster-wide views ask this host for)
    anything else            answered by the first worker that answers: the workers share etcd,
                             so nodes, suspects, audit, readiness and every operator write (the
                             push switch lives in etcd, and every worker follows it) work there

The port has the frontends' TLS, mTLS and bearer tokens (web/auth.py): the supervisor checks
each request and passes the caller's token and identity on to the workers, whose own admin ports
are private (loopback, plaintext).

prometheus-client's multiprocess mode was the other way to one scrape: it cannot serve the
collector-based gauges read from each worker's state at scrape time (subscribers, leadership, lag).
"""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence

import aiohttp
import grpc
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, PROCESS_COLLECTOR, CollectorRegistry
from prometheus_client import generate_latest as render_metrics
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from registry_service.listeners import Listener
from registry_service.web.auth import HttpAuth, checks_node_scope
from registry_service.web.connection_guard import HttpLimits
from registry_service.web.edge import error_response, new_app
from registry_service.web.shapes import host_subscribers_json
from registry_service.web.site import start_site

_WORKER_TIMEOUT_SECONDS = 3.0


def _no_worker_answered() -> web.Response:
    return error_response(grpc.StatusCode.UNAVAILABLE, "no worker of this host answered")


_FORWARDED_HEADERS = ("Authorization", "Content-Type", "X-Request-Id")


def merge_families(sources: Iterable[tuple[str, Iterable[Metric]]]) -> list[Metric]:
    """Merges (worker, metric families) pairs into one family per metric name, each sample
    labelled with its worker (one HELP and TYPE per family, as the text format requires)."""
    families: dict[str, Metric] = {}
    for worker, source in sources:
        for family in source:
            merged = families.get(family.name)
            if merged is None:
                merged = families[family.name] = Metric(
                    family.name, family.documentation, family.type, family.unit
                )
            merged.samples.extend(
                sample._replace(labels={**sample.labels, "worker": worker})
                for sample in family.samples
            )
    return list(families.values())


class _HostCollector(Collector):
    """The union of the workers' metrics as last fetched, and the supervisor's own process."""

    def __init__(self) -> None:
        self.expositions: list[tuple[str, str]] = []
        self.up: dict[str, bool] = {}

    def collect(self) -> Iterator[Metric]:
        yield from merge_families(
            [
                *(
                    (worker, text_string_to_metric_families(text))
                    for worker, text in self.expositions
                ),
                ("supervisor", PROCESS_COLLECTOR.collect()),
            ]
        )
        up = GaugeMetricFamily(
            "noderegistry_worker_up",
            "1 when the supervisor could scrape the worker's metrics, else 0.",
            labels=("worker",),
        )
        for worker, answered in sorted(self.up.items()):
            up.add_metric((worker,), int(answered))
        yield up


class HostAdmin:
    """The host's admin HTTP server in the supervisor; `workers()` gives each worker's admin URL
    (read per request: a restarted worker has a new port)."""

    def __init__(
        self,
        listener: Listener,
        workers: Callable[[], Sequence[str]],
        *,
        auth: HttpAuth,
        ssl_context: ssl.SSLContext | None = None,
        limits: HttpLimits | None = None,
    ) -> None:
        """`limits`: what one client may hold on the port (web/connection_guard.py)."""
        self._limits = limits
        self._listener = listener
        self._workers = workers
        self._auth = auth
        self._ssl = ssl_context
        self._collector = _HostCollector()
        self._registry = CollectorRegistry()
        self._registry.register(self._collector)
        self._session: aiohttp.ClientSession | None = None
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=_WORKER_TIMEOUT_SECONDS)
        )
        app = new_app(
            [
                web.get("/metrics", self.metrics),
                web.get("/healthz", self.healthz),
                web.get("/admin/subscribers", self.subscribers),
                web.get("/admin/evictor", self.evictor),
                web.route("*", "/{path:.*}", self.forward),
            ],
            self._auth.middleware(),
        )
        listener = self._listener
        self._runner, self.port = await start_site(
            app, listener.host, listener.port, self._ssl, limits=self._limits
        )

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    def _headers(self, request: web.Request) -> dict[str, str]:
        """What a worker gets of the caller: its token, its identity (checked here), and what
        a forwarded request needs of its own headers."""
        return self._auth.forwarded_headers(request, _FORWARDED_HEADERS)

    async def _fetch(self, url: str, headers: Mapping[str, str]) -> tuple[int, bytes, str] | None:
        assert self._session is not None
        try:
            async with self._session.get(url, headers=headers) as response:
                return response.status, await response.read(), response.content_type
        except (aiohttp.ClientError, TimeoutError):
            return None

    async def _from_every_worker(
        self, path: str, request: web.Request
    ) -> list[tuple[str, bytes | None]]:
        workers = list(self._workers())
        headers = self._headers(request)
        answers = await asyncio.gather(*(self._fetch(admin + path, headers) for admin in workers))
        return [
            (str(index), answer[1] if answer is not None and answer[0] == 200 else None)
            for index, answer in enumerate(answers)
        ]

    async def metrics(self, request: web.Request) -> web.Response:
        answers = await self._from_every_worker("/metrics", request)
        self._collector.up = {worker: body is not None for worker, body in answers}
        self._collector.expositions = [
            (worker, body.decode()) for worker, body in answers if body is not None
        ]
        body = render_metrics(self._registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def subscribers(self, request: web.Request) -> web.Response:
        answers = await self._from_every_worker(request.path_qs, request)
        return web.json_response(
            host_subscribers_json(
                (worker, json.loads(body) if body is not None else None) for worker, body in answers
            )
        )

    async def evictor(self, request: web.Request) -> web.Response:
        """The worker that leads eviction answers, if one of them does (else the first)."""
        answers = [
            json.loads(body)
            for _, body in await self._from_every_worker("/admin/evictor", request)
            if body is not None
        ]
        if not answers:
            return _no_worker_answered()
        return web.json_response(next((a for a in answers if a.get("leader")), answers[0]))

    @checks_node_scope
    async def forward(self, request: web.Request) -> web.Response:
        """Another admin path: the first worker that answers does (and checks a narrowed
        token's scope against the nodes it serves: it gets the caller's token)."""
        assert self._session is not None
        body = await request.read()
        headers = self._headers(request)
        for admin in self._workers():
            try:
                async with self._session.request(
                    request.method, admin + request.path_qs, data=body, headers=headers
                ) as response:
                    answer = web.Response(
                        body=await response.read(),
                        status=response.status,
                        content_type=response.content_type,
                    )
            except (aiohttp.ClientError, TimeoutError):
                continue
            return answer
        return _no_worker_answered()
