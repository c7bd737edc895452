"""Asking every announced frontend's admin surface at once (the cluster-wide admin views).

Convergence is answered without any etcd write per subscriber: each frontend keeps its own
subscriber table; the asking frontend fetches every announced admin URL concurrently (one per
host: a supervisor answers for its workers) with a short timeout, merges what came back, and
lists the frontends that did not answer. Calls carry the caller's bearer token and use the
configured TLS (this frontend's own certificate for the peers' mTLS). The peers are asked at
their announced addresses (pod IPs in Kubernetes), which a certificate from a Secret does not
name: `peer_tls_server_name` names what to check instead (the Service's name, as a
ServiceMonitor's `serverName`). The TLS context is replaced when its files change.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from registry_service.control import Announcement


@dataclass(frozen=True)
class Unreachable:
    """An announced frontend that did not answer, and why."""

    frontend: str
    admin_url: str
    error: str


@dataclass
class ClusterAnswer:
    """What the announced frontends answered: their subscribers, merged, and who did not."""

    subscribers: list[dict[str, Any]] = field(default_factory=list)
    answered: set[str] = field(default_factory=set)  # frontend ids
    unreachable: list[Unreachable] = field(default_factory=list)


class PeerAdmins:
    def __init__(
        self,
        ssl_context: ssl.SSLContext | None,
        timeout_seconds: float,
        server_name: str = "",
    ) -> None:
        """`server_name`: the name the peers' certificates are checked against, instead of the
        host of their announced admin URL (empty: that host)."""
        self._ssl = ssl_context
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._server_name = server_name or None

    def replace_ssl(self, ssl_context: ssl.SSLContext) -> None:
        """Later calls use `ssl_context` (its files changed)."""
        self._ssl = ssl_context

    async def _get(
        self, session: aiohttp.ClientSession, url: str, headers: Mapping[str, str]
    ) -> tuple[dict[str, Any] | None, str]:
        try:
            async with session.get(
                url,
                headers=headers,
                ssl=self._ssl or True,
                server_hostname=self._server_name if url.startswith("https:") else None,
            ) as response:
                body = await response.read()
                if response.status != 200:
                    return None, f"HTTP {response.status}: {body[:200].decode(errors='replace')}"
                data: dict[str, Any] = json.loads(body)
                return data, ""
        except TimeoutError:
            return None, f"no answer within {self._timeout.total:g}s"
        except (aiohttp.ClientError, ValueError, ssl.SSLError) as err:
            return None, f"{type(err).__name__}: {err}"

    async def subscribers(
        self, frontends: Iterable[Announcement], query: str, headers: Mapping[str, str]
    ) -> ClusterAnswer:
        """Every announced frontend's `/admin/subscribers?<query>`, asked once per admin URL."""
        by_url: dict[str, list[Announcement]] = {}
        for announcement in frontends:
            by_url.setdefault(announcement.admin_url, []).append(announcement)
        async with aiohttp.ClientSession(timeout=self._timeout) as session:
            answers = await asyncio.gather(
                *(self._get(session, f"{url}/admin/subscribers?{query}", headers) for url in by_url)
            )
        merged = ClusterAnswer()
        for (url, announced), (data, error) in zip(by_url.items(), answers, strict=True):
            if data is not None:
                merged.subscribers.extend(data.get("subscribers", []))
                merged.answered.update(data.get("frontends") or [data.get("frontend", "")])
            for announcement in announced:
                if announcement.id not in merged.answered:
                    merged.unreachable.append(
                        Unreachable(
                            announcement.id, url, error or "its host's admin port did not list it"
                        )
                    )
        return merged
