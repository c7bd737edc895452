"""What etcd and the frontend said about themselves over a window, from their /metrics: whether a
row broke in the frontend or below it (etcd's disk and apply loop, the frontend's failed etcd
requests), and the Registers a frontend with admission control refused by its own count."""

from __future__ import annotations

from dataclasses import dataclass

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

ETCD_SAMPLES = (
    "etcd_disk_wal_fsync_duration_seconds_sum",
    "etcd_disk_wal_fsync_duration_seconds_count",
    "etcd_disk_backend_commit_duration_seconds_sum",
    "etcd_disk_backend_commit_duration_seconds_count",
    "etcd_server_slow_apply_total",
    "etcd_server_slow_read_indexes_total",
)
# Calls an overload-safe frontend refused (RESOURCE_EXHAUSTED), by `call`: of them, Registers.
# A frontend without admission control has no such counter.
ADMISSION_REFUSED = "noderegistry_admission_refused_total"
FRONTEND_SAMPLES = ("noderegistry_etcd_request_errors_total", ADMISSION_REFUSED)


def totals(text: str, names: tuple[str, ...]) -> dict[str, float]:
    """The named samples of a /metrics page, each summed over its labels (of the admission
    refusals, the Registers' only); a name the page does not have is left out."""
    found: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name not in names:
                continue
            if sample.name == ADMISSION_REFUSED and sample.labels.get("call") != "Register":
                continue
            found[sample.name] = found.get(sample.name, 0.0) + sample.value
    return found


async def scrape(url: str, names: tuple[str, ...]) -> dict[str, float]:
    """`totals` of a /metrics page; {} when the page does not answer (a row on a saturated
    machine still reports)."""
    try:
        timeout = aiohttp.ClientTimeout(total=10)
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.get(url) as response,
        ):
            return totals(await response.text(), names)
    except (aiohttp.ClientError, TimeoutError):
        return {}


SAMPLES = ETCD_SAMPLES + FRONTEND_SAMPLES


@dataclass(frozen=True)
class Health:
    wal_fsync_ms: float
    backend_commit_ms: float
    slow_applies: int
    slow_read_indexes: int
    frontend_etcd_errors: int
    registers_refused: int | None = None
    """Registers the frontend refused as overloaded, by its own count; None when it has none."""

    def describe(self) -> str:
        return (
            f"etcd fsync {self.wal_fsync_ms:.1f} ms, commit {self.backend_commit_ms:.1f} ms "
            f"(means), {self.slow_applies} slow applies, {self.slow_read_indexes} slow read "
            f"indexes; {self.frontend_etcd_errors} failed etcd requests from the frontend"
        )


class HealthWindow:
    """Call `start()`, then `end()` for what changed in between."""

    def __init__(self, etcd_endpoint: str, frontend_admin: str) -> None:
        self._etcd = f"http://{etcd_endpoint}/metrics"
        self._frontend = f"{frontend_admin}/metrics"

    async def _now(self) -> dict[str, float]:
        return {
            **await scrape(self._etcd, ETCD_SAMPLES),
            **await scrape(self._frontend, FRONTEND_SAMPLES),
        }

    async def start(self) -> None:
        self._before = await self._now()

    async def end(self) -> Health:
        after = await self._now()
        d = {name: after.get(name, 0.0) - self._before.get(name, 0.0) for name in SAMPLES}

        def mean_ms(prefix: str) -> float:
            count = d[f"{prefix}_count"]
            return d[f"{prefix}_sum"] / count * 1000 if count else 0.0

        return Health(
            wal_fsync_ms=mean_ms("etcd_disk_wal_fsync_duration_seconds"),
            backend_commit_ms=mean_ms("etcd_disk_backend_commit_duration_seconds"),
            slow_applies=int(d["etcd_server_slow_apply_total"]),
            slow_read_indexes=int(d["etcd_server_slow_read_indexes_total"]),
            frontend_etcd_errors=int(d["noderegistry_etcd_request_errors_total"]),
            registers_refused=int(d[ADMISSION_REFUSED]) if ADMISSION_REFUSED in after else None,
        )
