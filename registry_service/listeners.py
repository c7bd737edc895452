"""Every port a frontend listens on, in one inventory (D62):

    setting        serves                                   workers share it   TLS
    listen         the gRPC API                             yes                with tls_cert_file
    health_listen  grpc.health.v1 only (optional)           yes                never (for probes)
    http_listen    the HTTP API and the console (optional)  yes                with tls_cert_file
    admin_listen   metrics, probes, the operator's admin    no                 with tls_cert_file,
                                                                               not a worker's own

A `Listener` knows its setting, its address and that address parsed, whether the workers of a
supervisor share it (SO_REUSEPORT, claimed by the supervisor: port_claim.py), whether it speaks
TLS, its URLs, and how to refuse it: `cannot listen on 127.0.0.1:9090 (address in use): set
REGISTRY_ADMIN_LISTEN`, one line naming the setting (D42). The start-up checks, the supervisor's
claims, the servers' binds, the announcement and the ready line ask `Listeners` instead of
parsing `host:port` themselves.
"""

from __future__ import annotations

import dataclasses
import errno
import re
import socket
from collections.abc import Iterator
from dataclasses import dataclass

from registry_service.port_claim import bind_error
from registry_service.settings import Settings, env_name
from registry_service.startup import ServeError, one_line

PRIVATE_ADMIN_LISTEN = "127.0.0.1:0"
"""A worker's own admin port: loopback, plaintext, any free port; its supervisor's admin port
answers for it (process/host_admin.py)."""
_WILDCARDS = frozenset({"", "0.0.0.0", "::"})
_READY_ADMIN_URL = re.compile(r"admin (https?://\S+)\)")


def split_address(address: str) -> tuple[str, int]:
    """`host:port`, `[v6]:port` or `:port` as (host, port), the host without brackets.

    Raises:
        ValueError: not `host:port` with a port from 0 to 65535.
    """
    host, colon, port_text = address.rpartition(":")
    if not colon or not port_text.isdigit() or int(port_text) > 65_535:
        raise ValueError(f"{address!r} is not host:port")
    return host.strip("[]"), int(port_text)


def url_host(host: str) -> str:
    """A host as it goes into a URL or host:port (an IPv6 address in brackets)."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


@dataclass(frozen=True)
class Listener:
    """One port of the frontend, as its setting configures it."""

    setting: str
    """The setting that names it (`listen`, `health_listen`, `http_listen`, `admin_listen`)."""
    address: str
    """`host:port` as configured; port 0 picks a free one when bound."""
    shared: bool = False
    """The workers of a supervisor share it (SO_REUSEPORT on a port their supervisor claimed)."""
    tls: bool = False
    """It speaks TLS (the gRPC port's certificate)."""

    @property
    def host(self) -> str:
        """The host to bind, without brackets (`""`: every interface). Start-up refused a
        malformed address (`Listeners.check`), so this raises nowhere after it."""
        return split_address(self.address)[0]

    @property
    def port(self) -> int:
        """The configured port (0: any free one; the bound one is the server's)."""
        return split_address(self.address)[1]

    @property
    def scheme(self) -> str:
        """`https` with TLS, else `http`: what URLs of this listener begin with."""
        return "https" if self.tls else "http"

    def at(self, port: int) -> Listener:
        """The same listener on `port` (a port 0 resolved once for every worker)."""
        return dataclasses.replace(self, address=self.host_port(port))

    def host_port(self, port: int, host: str = "") -> str:
        """`host:port` of the bound port (`host` instead of the configured one if given)."""
        return f"{url_host(host or self.host)}:{port}"

    def url(self, port: int, host: str = "") -> str:
        """`https://host:port` of the bound port (`host` instead of the configured one)."""
        return f"{self.scheme}://{self.host_port(port, host)}"

    def refusal(self, error: OSError | str) -> ServeError:
        """Why it cannot be listened on, in one line naming its setting: `cannot listen on
        127.0.0.1:9090 (address in use): set REGISTRY_ADMIN_LISTEN`."""
        if isinstance(error, str):
            reason = error
        elif error.errno == errno.EADDRINUSE:
            reason = "address in use"
        else:
            reason = (error.strerror or str(error)).lower()
        return ServeError(
            f"cannot listen on {self.address} ({one_line(reason)}): set {env_name(self.setting)}"
        )

    def bind_error(self) -> OSError | None:
        """Why binding the port without SO_REUSEPORT fails now (port_claim.bind_error)."""
        return bind_error(self.host, self.port)

    def check(self) -> None:
        """Refuses a malformed address, or a port that some process listens on.

        Raises:
            ServeError: naming the setting.
        """
        try:
            split_address(self.address)
        except ValueError:
            raise self.refusal("not host:port") from None
        error = self.bind_error()
        if error is not None:
            raise self.refusal(error)


@dataclass(frozen=True)
class Listeners:
    """Every listener of one frontend (or of a supervisor and its workers)."""

    grpc: Listener
    admin: Listener
    health: Listener | None = None
    api: Listener | None = None
    advertise_address: str = ""
    """The host others reach this frontend at, when set (`advertise_address`)."""

    @classmethod
    def of(cls, settings: Settings, *, private_admin: bool = False) -> Listeners:
        """The listeners `settings` configure; with `private_admin` (a worker) the admin port is
        plaintext: its supervisor's admin port carries TLS for it."""
        tls = bool(settings.tls_cert_file)
        return cls(
            grpc=Listener("listen", settings.listen, shared=True, tls=tls),
            health=Listener("health_listen", settings.health_listen, shared=True)
            if settings.health_listen
            else None,
            api=Listener("http_listen", settings.http_listen, shared=True, tls=tls)
            if settings.http_listen
            else None,
            admin=Listener("admin_listen", settings.admin_listen, tls=tls and not private_admin),
            advertise_address=settings.advertise_address,
        )

    def __iter__(self) -> Iterator[Listener]:
        """gRPC, health, the HTTP API, admin: the ones configured, in the order they bind."""
        for listener in (self.grpc, self.health, self.api, self.admin):
            if listener is not None:
                yield listener

    @property
    def shared(self) -> list[Listener]:
        """The ports a supervisor's workers share: gRPC, and health and the HTTP API if set
        (every worker serves the same data, so any of them may take a blocking read or an event
        stream)."""
        return [listener for listener in self if listener.shared]

    def check(self, *, worker: bool = False) -> None:
        """Refuses a malformed address or a port that some process listens on; a worker checks
        only its own ports (the shared ones are its supervisor's, checked and claimed there).

        Raises:
            ServeError: naming the setting.
        """
        for listener in self:
            if not (worker and listener.shared):
                listener.check()

    @property
    def advertised_host(self) -> str:
        """The host others reach this frontend at: `advertise_address`, else the gRPC port's
        host, else (listening on every interface) this machine's name."""
        if self.advertise_address:
            return self.advertise_address
        host = self.grpc.host
        return socket.gethostname() if host in _WILDCARDS else host

    def ready_line(
        self, grpc_port: int, admin_port: int, api_port: int = 0, *, workers: str = ""
    ) -> str:
        """What `serve` prints once it serves: `node-registry serving on H:P (api URL/v1/,
        console URL/ui/, admin URL)`; a supervisor's names its workers first (`workers`: `2
        workers, pids 7, 8; `). The admin URL ends the line: a supervisor reads its workers'
        there (`admin_url_of`)."""
        api = ""
        if self.api is not None:
            base = self.api.url(api_port)
            api = f"api {base}/v1/, console {base}/ui/, "
        return (
            f"node-registry serving on {self.grpc.host_port(grpc_port)} "
            f"({workers}{api}admin {self.admin.url(admin_port)})"
        )


def admin_url_of(ready_line: str) -> str:
    """The admin URL of a ready line (`Listeners.ready_line`); empty when it is none."""
    match = _READY_ADMIN_URL.search(ready_line)
    return match.group(1) if match else ""
