"""Where a frontend runs and how others reach it: alone, or as one worker of a supervisor.

A worker is told by its supervisor, through the environment (not settings: they are the
supervisor's to set, never an operator's), its index, the number of workers, and the URL of the
host's admin port, which the supervisor serves for all of them. A worker announces that URL (its
own admin port is private, on loopback, plaintext) and trusts the operator identity the
supervisor forwards.
"""

from __future__ import annotations

import socket
from collections.abc import Mapping
from dataclasses import dataclass

SUPERVISOR_PID_ENV = "NODEREGISTRY_SUPERVISOR_PID"
WORKER_INDEX_ENV = "NODEREGISTRY_WORKER_INDEX"
WORKER_COUNT_ENV = "NODEREGISTRY_WORKER_COUNT"
HOST_ADMIN_URL_ENV = "NODEREGISTRY_HOST_ADMIN_URL"
WORKER_VARIABLES = frozenset(
    {SUPERVISOR_PID_ENV, WORKER_INDEX_ENV, WORKER_COUNT_ENV, HOST_ADMIN_URL_ENV}
)
_WILDCARDS = frozenset({"", "0.0.0.0", "::", "[::]"})


@dataclass(frozen=True)
class Placement:
    """This frontend's place on its host."""

    worker_index: int = 0
    worker_count: int = 1
    host_admin_url: str = ""
    """Set for a worker: the supervisor's admin URL, which answers for every worker."""

    @property
    def behind_supervisor(self) -> bool:
        return bool(self.host_admin_url)

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> Placement:
        if not environ.get(HOST_ADMIN_URL_ENV):
            return cls()
        return cls(
            worker_index=int(environ.get(WORKER_INDEX_ENV, "0")),
            worker_count=int(environ.get(WORKER_COUNT_ENV, "1")),
            host_admin_url=environ[HOST_ADMIN_URL_ENV],
        )


def advertised_host(advertise_address: str, listen: str) -> str:
    """The host others reach this frontend at: the setting, else the listen address's host,
    else (listening on every interface) this machine's name."""
    if advertise_address:
        return advertise_address
    host = listen.rpartition(":")[0]
    return socket.gethostname() if host in _WILDCARDS else host


def url_host(host: str) -> str:
    """A host as it goes into a URL or host:port (an IPv6 address in brackets)."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def api_urls(tls: bool, listen: str, port: int) -> str:
    """`api URL/v1/, console URL/ui/, ` of the HTTP API port, for a ready line (which ends with
    the admin URL: the supervisor reads a worker's there)."""
    base = f"{'https' if tls else 'http'}://{url_host(listen.rpartition(':')[0])}:{port}"
    return f"api {base}/v1/, console {base}/ui/, "
