"""Every setting of a frontend, in one frozen dataclass: the only reader of the environment.

Each field is `REGISTRY_<FIELD>` in the environment and `--<field-with-dashes>` on the command line
(a flag beats the environment, which beats the default). The README's configuration table lists the
same fields; a test keeps the two in step.

Strict, because a setting that is silently ignored is worse than one refused (decision D32): a
`REGISTRY_*` variable that names no setting is an error naming the closest one, a boolean is one of
true/false/1/0/yes/no, and a malformed value names its variable. Secrets (`secret=True` below) also
load from a file named by `REGISTRY_<NAME>_FILE` (Kubernetes and Docker secrets are files).
Every refusal is a `SettingsError` whose message is one line; the CLI prints it and exits 1.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import os
import re
import types
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints

from registry_service.domain import Limits
from registry_service.host import Host

ENV_PREFIX = "REGISTRY_"
# REGISTRY_* variables that are not settings: failpoints.py's test instrument (D24).
NOT_SETTINGS = frozenset({"REGISTRY_FAILPOINTS"})
# What Kubernetes puts in every pod of a namespace with a Service named `registry` (or
# `registry-...`): REGISTRY_SERVICE_HOST, REGISTRY_SERVICE_PORT[_<NAME>], REGISTRY_PORT_50051_TCP...
# and REGISTRY_PORT=tcp://... (our Deployment turns them off with enableServiceLinks: false).
_KUBERNETES_SERVICE_LINK = re.compile(
    r"REGISTRY(_[A-Z0-9_]+)?_(SERVICE_HOST|SERVICE_PORT(_[A-Z0-9_]+)?"
    r"|PORT_\d+_(TCP|UDP|SCTP)(_PROTO|_PORT|_ADDR)?)"
)
_KUBERNETES_PORT_URL = re.compile(r"(tcp|udp|sctp)://")
_BOOLEANS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}
# Defaults that differ in a container (host.py): reachable through the container's interface.
_CONTAINER_LISTEN = "0.0.0.0:50051"
_CONTAINER_ADMIN_LISTEN = "0.0.0.0:9090"
_CONTAINER_HTTP_LISTEN = "0.0.0.0:8080"


class SettingsError(ValueError):
    """A setting is unknown, malformed or unreadable; the message names it, on one line."""


def _setting(default: Any, help: str, *, secret: bool = False) -> Any:
    return field(default=default, metadata={"help": help, "secret": secret})


def env_name(name: str) -> str:
    """The environment variable of a setting: `etcd_endpoints` -> `REGISTRY_ETCD_ENDPOINTS`."""
    return f"{ENV_PREFIX}{name.upper()}"


def file_env_name(name: str) -> str:
    """The variable naming a file that holds a secret setting."""
    return f"{env_name(name)}_FILE"


@dataclass(frozen=True)
class Settings:
    # Serving
    listen: str = _setting(
        "127.0.0.1:50051",
        "gRPC listen address, host:port (port 0 picks one); 0.0.0.0:50051 in a container",
    )
    cluster: str = _setting("default", "cluster name; one etcd can hold several clusters")
    workers: int = _setting(
        0,
        "frontend processes sharing the gRPC port (SO_REUSEPORT); 0: one per CPU the process may "
        "use (its cgroup CPU quota, rounded down)",
    )
    shutdown_grace_seconds: float = _setting(
        5.0, "on SIGTERM, how long open streams get before they end with UNAVAILABLE"
    )
    max_receive_message_bytes: int = _setting(
        1024 * 1024, "largest gRPC request a frontend accepts"
    )
    admin_listen: str = _setting(
        "127.0.0.1:9090",
        "HTTP admin address: /metrics, /healthz, /readyz, /admin/* (port 0 picks); "
        "0.0.0.0:9090 in a container",
    )
    http_listen: str = _setting(
        "127.0.0.1:8080",
        "HTTP API (/v1/: JSON, blocking reads, Server-Sent Events) and web console (/ui/) address "
        "for clients, with the gRPC port's TLS and tokens (port 0 picks; empty: none); workers "
        "share it; 0.0.0.0:8080 in a container",
    )
    http_max_wait_seconds: float = _setting(
        300.0,
        "longest wait of a blocking read (/v1/nodes?index=R&wait=...): a longer wait is cut to "
        "this, and a read that gives an index but no wait (or wait=0, as in Consul) waits this "
        "long",
    )
    http_header_timeout_seconds: float = _setting(
        10.0, "HTTP ports: a request's line and headers must arrive within this (else 408)"
    )
    http_idle_timeout_seconds: float = _setting(
        60.0, "HTTP ports: an idle kept-alive connection is closed after this"
    )
    http_max_connections_per_peer: int = _setting(
        256, "HTTP ports: open connections per IP address (one more: 429, closed)"
    )
    http_max_header_bytes: int = _setting(
        16 * 1024, "HTTP ports: a request's line and headers together (else 431)"
    )
    admin_token: str = _setting(
        "",
        "bearer token for the admin port, reads and writes (tokens of auth_tokens_file with the "
        "admin, admin:read or admin:write scope work too); with any token or mTLS configured, "
        "only /healthz and /readyz answer without one",
        secret=True,
    )
    advertise_address: str = _setting(
        "",
        "host (name or IP) at which other frontends and operators reach this one, announced in "
        "etcd with the ports of listen and admin_listen; empty: listen's host (this machine's "
        "name when that is 0.0.0.0)",
    )
    frontend_lease_ttl_seconds: int = _setting(
        10,
        "lease of the frontend's announcement in etcd: a dead frontend leaves the list within it",
    )
    announce_refresh_seconds: float = _setting(
        5.0, "the announced subscriber count is refreshed at most this often (and only on change)"
    )
    peer_timeout_seconds: float = _setting(
        2.0,
        "the cluster-wide admin views ask every announced frontend at once; one that does not "
        "answer within this is listed as unreachable",
    )
    peer_ca_file: str = _setting(
        "",
        "CA bundle of the other frontends' admin certificates (cluster-wide admin views over "
        "TLS); empty: tls_client_ca_file, else the system's CAs",
    )
    peer_tls_server_name: str = _setting(
        "",
        "name to check in the other frontends' admin certificates (cluster-wide admin views over "
        "TLS) instead of the address they announce, for a certificate that names a Service and "
        "not each pod's IP (as a ServiceMonitor's serverName); empty: the announced address",
    )
    tls_cert_file: str = _setting(
        "", "certificate (PEM) of the gRPC and admin ports; set with tls_key_file"
    )
    tls_key_file: str = _setting("", "private key (PEM) of tls_cert_file")
    tls_client_ca_file: str = _setting(
        "",
        "CA bundle of client certificates: set to require mTLS on the gRPC port and on the admin "
        "port (but /healthz and /readyz, for probes)",
    )
    health_listen: str = _setting(
        "", "plaintext gRPC port serving only grpc.health.v1 (for probes when mTLS is on)"
    )
    auth_tokens_file: str = _setting(
        "",
        "file of bearer tokens with scopes ('name register:dc1/data,watch token' per line; "
        "scopes register, watch, xds, metrics, admin:read, admin:write, admin = both, each but "
        "metrics narrowed by :datacenter/type patterns); read again when it changes",
    )
    credentials_reload_seconds: float = _setting(
        5.0,
        "how often the tokens file and every certificate, key and CA file are checked for "
        "changes; a changed one is read again and used without a restart (a bad one is logged "
        "and the one in use kept); 0: read once at start",
    )
    max_metadata_bytes: int = _setting(8 * 1024, "largest request metadata (headers) accepted")
    max_streams_per_peer: int = _setting(
        1_000, "open KeepAlive + WatchNodes streams per peer (token name, cert name or IP)"
    )
    keepalive_max_messages_per_second: float = _setting(
        10_000.0,
        "KeepAlive messages one stream may send per second (a message of several renewals counts "
        "once); beyond: RESOURCE_EXHAUSTED",
    )
    grpc_min_ping_interval_seconds: float = _setting(
        10.0, "clients may ping this often, even with no call open; faster pings are strikes"
    )
    grpc_max_ping_strikes: int = _setting(
        2, "too-frequent pings tolerated before a connection is closed (GOAWAY too_many_pings)"
    )
    grpc_keepalive_time_seconds: float = _setting(
        30.0, "the frontend pings a connection silent this long, to find dead peers"
    )
    grpc_keepalive_timeout_seconds: float = _setting(
        10.0, "a peer that does not answer a keepalive ping within this is disconnected"
    )
    grpc_reflection: bool = _setting(
        False,
        "serve gRPC server reflection on the gRPC port (grpcurl and the like list the services "
        "with it); it answers without a token, so it is off unless set",
    )
    gc_full_collection_seconds: float = _setting(
        300.0, "full garbage collections run on this timer instead of stalling streams; 0: Python's"
    )
    log_format: str = _setting("text", "text, or json for one JSON object per log line")
    tracing: bool = _setting(
        False,
        "export OpenTelemetry spans over OTLP ([tracing] extra; OTEL_EXPORTER_OTLP_* say where)",
    )
    # etcd
    etcd_endpoints: tuple[str, ...] = _setting(
        (), "comma-separated etcd client endpoints host:port; empty starts a local etcd"
    )
    etcd_prefix: str = _setting("", "key prefix in etcd; empty means /noderegistry/<cluster>/")
    etcd_username: str = _setting("", "etcd user (auth enabled); the password is etcd_password")
    etcd_password: str = _setting("", "etcd password for etcd_username", secret=True)
    etcd_ca_file: str = _setting("", "CA bundle to verify etcd's TLS certificate; set to use TLS")
    etcd_cert_file: str = _setting("", "client certificate for etcd mTLS")
    etcd_key_file: str = _setting("", "client key for etcd mTLS")
    etcd_request_timeout_seconds: float = _setting(5.0, "deadline of one etcd request")
    etcd_watch_stale_seconds: float = _setting(
        10.0, "a watch that hears nothing (not even progress) this long is reopened elsewhere"
    )
    etcd_outage_detection_seconds: float = _setting(
        1.0,
        "etcd that gives no linearizable answer within this (probed when nothing confirmed it for "
        "half of this) counts as down: lists served stale, writes refused at once; lease renewals "
        "unanswered this long move to another member",
    )
    etcd_connect_timeout_seconds: float = _setting(
        10.0, "at start, how long a frontend waits for etcd to answer before it exits"
    )
    embedded_etcd_dir: str = _setting(".data/etcd", "data folder of the local etcd")
    embedded_etcd_port: int = _setting(2379, "client port of the local etcd (peer port is +1)")
    embedded_etcd_max_restarts: int = _setting(
        5, "a local etcd that dies is restarted; after this many restarts in a row serve exits 1"
    )
    # Registrations
    ttl_default_seconds: int = _setting(10, "TTL granted when a Register asks for 0")
    ttl_min_seconds: int = _setting(3, "smallest TTL a Register may ask for")
    ttl_max_seconds: int = _setting(3600, "largest TTL a Register may ask for")
    id_max_length: int = _setting(63, "longest node id")
    type_max_length: int = _setting(31, "longest node type")
    datacenter_max_length: int = _setting(63, "longest datacenter name")
    metadata_max_entries: int = _setting(64, "most metadata entries on a node")
    metadata_key_max_bytes: int = _setting(128, "longest metadata key")
    metadata_value_max_bytes: int = _setting(1024, "longest metadata value")
    metadata_max_total_bytes: int = _setting(16 * 1024, "all metadata keys and values together")
    selector_max_bytes: int = _setting(
        1024,
        "longest label selector of a scope (GetNodes, WatchNodes, the HTTP API, an xDS resource "
        "name); at most 65536",
    )
    keepalive_max_registrations_per_stream: int = _setting(
        10_000, "distinct registrations one KeepAlive stream may renew"
    )
    keepalive_coalesce_seconds: float = _setting(
        0.5,
        "renewals of one lease closer together than this (or than a sixth of its TTL, when "
        "longer) are answered without asking etcd; 0 asks etcd every time",
    )
    # Health checks and flap damping (docs/design.md §13)
    health_checks_max_per_node: int = _setting(
        4, "checks the registry runs per registration; 0: none (owners may report their health)"
    )
    health_check_min_interval_seconds: float = _setting(1.0, "shortest interval of a check")
    health_check_max_timeout_seconds: float = _setting(
        10.0, "longest timeout of a check's probe (and never beyond its interval)"
    )
    health_probe_concurrency: int = _setting(256, "probes one frontend runs at once, at most")
    damping_penalty_per_flap: float = _setting(
        1000.0, "flap damping: penalty per flip of a node's health, or per registration anew"
    )
    damping_half_life_seconds: float = _setting(60.0, "flap damping: the penalty halves in this")
    damping_suppress_penalty: float = _setting(
        3000.0, "flap damping: a node's penalty that holds it FAILING (damped); 0: no damping"
    )
    damping_reuse_penalty: float = _setting(
        750.0, "flap damping: a damped node is released once its penalty decays below this"
    )
    damping_max_suppress_seconds: float = _setting(
        300.0, "flap damping: the longest a node stays damped after its last flip"
    )
    # Watching
    watch_history_revisions: int = _setting(
        10_000, "changed revisions kept in memory so that WatchNodes can resume without a resync"
    )
    watch_queue_messages: int = _setting(
        1_000, "messages queued for one subscriber before its backlog collapses into a resync"
    )
    watch_progress_seconds: float = _setting(
        5.0, "an idle WatchNodes stream gets a progress message this often"
    )
    watch_fanout_slice_subscribers: int = _setting(
        10,
        "a change is handed to this many subscribers, then other requests run, then the next "
        "slice (keeps Register and KeepAlive answering during a large fan-out)",
    )
    ack_deadline_seconds: float = _setting(
        30.0,
        "a subscriber that opted into acknowledgements and has not confirmed a message this long "
        "after it was sent is re-pushed (resync UNCONFIRMED); 0: never",
    )
    # Datacenters (federation, docs/design.md §10)
    datacenter: str = _setting(
        "",
        "this registry's datacenter: it writes that datacenter's nodes only (others get "
        "FAILED_PRECONDITION naming theirs); empty: one etcd holds any number of datacenters",
    )
    remote_datacenters: str = _setting(
        "",
        "other datacenters' registries to follow read-only, 'dc2=host:port,host:port;dc3=...' "
        "(their frontends' gRPC addresses, tried in order); needs datacenter",
    )
    remote_tls_ca_file: str = _setting(
        "", "CA bundle to verify the remote datacenters' frontends; set to follow them over TLS"
    )
    remote_tls_cert_file: str = _setting(
        "", "client certificate toward the remote datacenters (their mTLS); set with the key"
    )
    remote_tls_key_file: str = _setting("", "private key of remote_tls_cert_file")
    remote_token: str = _setting(
        "",
        "bearer token sent to the remote datacenters' frontends (a token with the watch scope)",
        secret=True,
    )
    remote_silence_seconds: float = _setting(
        8.0,
        "a remote datacenter's stream silent this long (not even a progress message) is resumed "
        "on its next frontend, the datacenter shown stale meanwhile; keep it above 1.25 times "
        "the remote frontends' watch_progress_seconds (the longest gap between their messages)",
    )
    # Eviction
    evictor_lease_ttl_seconds: int = _setting(
        5, "lease of the evictor's election key: a dead evictor is replaced within about this"
    )
    evictor_poll_seconds: float = _setting(
        0.5, "how often a frontend that is not the evictor checks whether it has become it"
    )
    evictor_reconcile_seconds: float = _setting(
        5.0, "the evictor re-checks every member at least this often, besides reacting to changes"
    )
    evictor_dry_run: bool = _setting(
        False, "the evictor decides and reports (admin, metrics, logs) but removes nothing"
    )
    eviction_budget_ratio: float = _setting(
        0.15, "share of a datacenter's members that may expire per window; the rest turn SUSPECT"
    )
    eviction_budget_minimum: int = _setting(
        2, "expired members a datacenter may always lose per window, whatever its size"
    )
    eviction_budget_type_minimum: int = _setting(
        2,
        "expired members each (datacenter, type) may always lose per window; its share is "
        "eviction_budget_ratio of the type's members, and the smaller allowance wins",
    )
    eviction_window_seconds: float = _setting(60.0, "the sliding window of the eviction budget")
    suspect_ceiling_seconds: float = _setting(
        900.0, "a SUSPECT member still silent after this long is removed, whatever the budget"
    )
    evictor_outage_grace_seconds: float = _setting(
        5.0, "after etcd comes back, the evictor waits this long so renewing nodes reach it first"
    )
    audit_retention_seconds: int = _setting(
        86_400, "how long etcd keeps each membership transition's cause (0 records none)"
    )
    identity_retention_seconds: float = _setting(
        86_400.0, "an id's last incarnation is kept this long after it left, then collected"
    )
    identity_gc_interval_seconds: float = _setting(
        300.0, "how often the eviction leader collects identity records"
    )

    @property
    def prefix(self) -> str:
        prefix = self.etcd_prefix or f"/noderegistry/{self.cluster}/"
        return prefix if prefix.endswith("/") else prefix + "/"

    @property
    def limits(self) -> Limits:
        names = {f.name for f in dataclasses.fields(Limits)}
        return Limits(**{name: getattr(self, name) for name in names})

    @classmethod
    def load(
        cls,
        argv: Sequence[str] | None = None,
        environ: Mapping[str, str] | None = None,
        *,
        namespace: argparse.Namespace | None = None,
        host: Host | None = None,
    ) -> Settings:
        """Defaults (for this host), overridden by REGISTRY_* variables, overridden by flags
        (`argv`, or a `namespace` already parsed by the CLI). `workers` 0 becomes a count."""
        environ = os.environ if environ is None else environ
        host = Host.probe(environ) if host is None else host
        defaults = cls()
        if host.in_container:
            defaults = cls(
                listen=_CONTAINER_LISTEN,
                admin_listen=_CONTAINER_ADMIN_LISTEN,
                http_listen=_CONTAINER_HTTP_LISTEN,
            )
        values = cls.from_environ(environ, defaults)
        if argv:
            parser = argparse.ArgumentParser(add_help=False)
            add_arguments(parser)
            namespace = parser.parse_args(argv)
        if namespace is not None:
            values = apply_arguments(values, namespace)
        if values.workers == 0:
            values = dataclasses.replace(values, workers=host.cpus)
        return values

    @classmethod
    def from_environ(cls, environ: Mapping[str, str], defaults: Settings | None = None) -> Settings:
        """`defaults` overridden by the REGISTRY_* variables of `environ` (all must be known)."""
        _reject_unknown(environ)
        overrides = {}
        for f in dataclasses.fields(cls):
            raw = _environ_value(f, environ)
            if raw is not None:
                overrides[f.name] = _parse(f.name, raw, env_name(f.name))
        return dataclasses.replace(defaults or cls(), **overrides)


_TYPES = get_type_hints(Settings)
_SECRETS = tuple(f.name for f in dataclasses.fields(Settings) if f.metadata["secret"])
SECRET_FILE_VARIABLES = frozenset(file_env_name(name) for name in _SECRETS)


def _known_variables() -> dict[str, str]:
    """Every variable this module reads, by its name without the prefix."""
    names = [env_name(f.name) for f in dataclasses.fields(Settings)] + sorted(SECRET_FILE_VARIABLES)
    return {name.removeprefix(ENV_PREFIX): name for name in names}


def _reject_unknown(environ: Mapping[str, str]) -> None:
    known = _known_variables()
    unknown = sorted(
        name
        for name, value in environ.items()
        if name.startswith(ENV_PREFIX)
        and name.removeprefix(ENV_PREFIX) not in known
        and name not in NOT_SETTINGS
        and not _KUBERNETES_SERVICE_LINK.fullmatch(name)
        and not (name.endswith("_PORT") and _KUBERNETES_PORT_URL.match(value))
    )
    if not unknown:
        return
    described = []
    for name in unknown:
        close = difflib.get_close_matches(name.removeprefix(ENV_PREFIX), known, n=1, cutoff=0.6)
        hint = f" (did you mean {known[close[0]]}?)" if close else ""
        described.append(f"{name}{hint}")
    raise SettingsError(
        f"unknown setting{'s' if len(unknown) > 1 else ''} {', '.join(described)}: "
        "the README's configuration table lists every REGISTRY_* variable"
    )


def _environ_value(setting: dataclasses.Field[Any], environ: Mapping[str, str]) -> str | None:
    """The raw value of a setting: its variable, or for a secret, the file its _FILE names."""
    variable = env_name(setting.name)
    file_variable = file_env_name(setting.name)
    if not setting.metadata["secret"] or file_variable not in environ:
        return environ.get(variable)
    if variable in environ:
        raise SettingsError(f"{variable} and {file_variable} are both set: keep one")
    path = environ[file_variable]
    try:
        # A secret file usually ends with a newline that is not part of the secret.
        return Path(path).read_text().rstrip("\r\n")
    except OSError as err:
        raise SettingsError(f"{file_variable}: cannot read {path} ({err.strerror})") from None


def _parse(name: str, raw: str, source: str) -> Any:
    """`raw` as the type of setting `name`; `source` (its variable or flag) names it in errors."""
    kind = _TYPES[name]
    if kind is bool:
        value = _BOOLEANS.get(raw.strip().lower())
        if value is None:
            raise SettingsError(f"{source}: {raw!r} is not a boolean: use true/false/1/0/yes/no")
        return value
    try:
        if kind is int:
            return int(raw)
        if kind is float:
            return float(raw)
    except ValueError:
        raise SettingsError(f"{source}: {raw!r} is not a valid {kind.__name__}") from None
    if isinstance(kind, types.GenericAlias):  # tuple[str, ...]
        return tuple(part.strip() for part in raw.split(",") if part.strip())
    return raw


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds one --flag per setting; unset flags leave the value from the environment."""
    for f in dataclasses.fields(Settings):
        parser.add_argument(
            f"--{f.name.replace('_', '-')}",
            dest=f.name,
            default=None,
            metavar=f.name.upper(),
            help=f"{f.metadata['help']} (env {env_name(f.name)}, default {f.default!r})",
        )


def apply_arguments(settings: Settings, namespace: argparse.Namespace) -> Settings:
    """`settings` overridden by the flags given in `namespace` (see add_arguments)."""
    overrides = {
        f.name: _parse(f.name, getattr(namespace, f.name), f"--{f.name.replace('_', '-')}")
        for f in dataclasses.fields(Settings)
        if getattr(namespace, f.name, None) is not None
    }
    return dataclasses.replace(settings, **overrides)


def markdown_table() -> str:
    """The README's configuration table, generated from the fields above."""
    rows = ["| setting | flag | default | meaning |", "|---|---|---|---|"]
    for f in dataclasses.fields(Settings):
        default = ",".join(f.default) if isinstance(f.default, tuple) else f.default
        meaning = f.metadata["help"]
        if f.metadata["secret"]:
            meaning += f"; or `{file_env_name(f.name)}`: a file holding it"
        rows.append(
            f"| `{env_name(f.name)}` | `--{f.name.replace('_', '-')}` | `{default}` | {meaning} |"
        )
    return "\n".join(rows)
