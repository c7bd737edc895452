"""Where a frontend runs: alone, or as one worker of a supervisor (how others reach it is
listeners.py's).

A worker is told by its supervisor, through the environment (not settings: they are the
supervisor's to set, never an operator's), its index, the number of workers, and the URL of the
host's admin port, which the supervisor serves for all of them. A worker announces that URL (its
own admin port is private, on loopback, plaintext) and trusts the operator identity the
supervisor forwards.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

SUPERVISOR_PID_ENV = "NODEREGISTRY_SUPERVISOR_PID"
WORKER_INDEX_ENV = "NODEREGISTRY_WORKER_INDEX"
WORKER_COUNT_ENV = "NODEREGISTRY_WORKER_COUNT"
HOST_ADMIN_URL_ENV = "NODEREGISTRY_HOST_ADMIN_URL"
WORKER_VARIABLES = frozenset(
    {SUPERVISOR_PID_ENV, WORKER_INDEX_ENV, WORKER_COUNT_ENV, HOST_ADMIN_URL_ENV}
)


@dataclass(frozen=True)
class Placement:
    """This frontend's place on its host."""

    worker_index: int = 0
    worker_count: int = 1
    host_admin_url: str = ""
    """Set for a worker: the supervisor's admin URL, which answers for every worker."""

    @property
    def behind_supervisor(self) -> bool:
        """Whether this frontend is a supervisor's worker (it has a host admin URL)."""
        return bool(self.host_admin_url)

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> Placement:
        """The placement a supervisor gave its worker; alone when it gave none."""
        if not environ.get(HOST_ADMIN_URL_ENV):
            return cls()
        return cls(
            worker_index=int(environ.get(WORKER_INDEX_ENV, "0")),
            worker_count=int(environ.get(WORKER_COUNT_ENV, "1")),
            host_admin_url=environ[HOST_ADMIN_URL_ENV],
        )
