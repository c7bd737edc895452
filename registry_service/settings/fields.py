"""Every setting of a frontend, in one frozen dataclass: the only reader of the environment.

Each field is `REGISTRY_<FIELD>` in the environment and `--<field-with-dashes>` on the command line
(a flag beats the environment, which beats the default). The README's configuration table lists the
same fields; a test keeps the two in step. How a value is read (strictly, D32) is
settings/environment.py's job; this module says which settings there are.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from registry_service.domain import Limits
from registry_service.host import Host
from registry_service.settings.environment import (
    env_name,
    read_arguments,
    read_environ,
    secret_variables,
    table_rows,
    with_arguments,
)
from registry_service.settings.environment import setting as _setting

_CONTAINER_LISTEN = "0.0.0.0:50051"
_CONTAINER_ADMIN_LISTEN = "0.0.0.0:9090"
_CONTAINER_HTTP_LISTEN = "0.0.0.0:8080"


@dataclass(frozen=True)
class Settings:
    """Every setting of a frontend, read once at start (`load`); each field's help is its README
    row."""

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
    admission_max_limit: int = _setting(
        256,
        "Registers one frontend process runs at once at most; below it an adaptive limit follows "
        "their latency and the event loop's lag; a Register beyond it waits for a slot or is "
        "refused (RESOURCE_EXHAUSTED with a retry pushback), so renewals never queue behind "
        "Registers; 0 turns admission control off",
    )
    admission_min_limit: int = _setting(
        2, "the adaptive Register limit never shrinks below this while the event loop keeps up"
    )
    admission_initial_limit: int = _setting(
        32, "Registers taken at once by a frontend that has measured nothing yet"
    )
    admission_max_waiting: int = _setting(
        1_024,
        "Registers that may wait for a slot within the limit (waiting costs no CPU); beyond, a "
        "Register is refused at once",
    )
    admission_max_wait_seconds: float = _setting(
        1.0, "how long a Register waits for a slot before it is refused"
    )
    admission_loop_lag_seconds: float = _setting(
        0.1,
        "event-loop lag above which a frontend counts as congested: its Register limit shrinks "
        "and GetNodes and new WatchNodes streams are refused (RESOURCE_EXHAUSTED with a retry "
        "pushback); at four times this it takes no Register at all",
    )
    admission_retry_after_seconds: float = _setting(
        1.0,
        "the retry pushback (grpc-retry-pushback-ms) of a call refused as overloaded, drawn "
        "between half and one and a half times this",
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
    self_preservation_min_members: int = _setting(
        10,
        "self-preservation engages only in a datacenter of at least this many members (counting "
        "those removed within the window): in a smaller one every expired member is removed at "
        "once, as a developer's few test nodes should be; 0: always",
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
        """The key prefix in etcd, ending in `/`: `etcd_prefix`, or one per cluster."""
        prefix = self.etcd_prefix or f"/noderegistry/{self.cluster}/"
        return prefix if prefix.endswith("/") else prefix + "/"

    @property
    def limits(self) -> Limits:
        """The bounds on client input (domain.Limits), from the fields of the same names."""
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
        return read_environ(cls, environ, defaults or cls())


def self_preservation_line(settings: Settings) -> str:
    """How the eviction budget is set, in one line (`make run` shows it: a developer whose test
    nodes stay SUSPECT wants to know why, and which setting changes it)."""
    budget = (
        f"at most {settings.eviction_budget_ratio:.0%} of its members (at least "
        f"{settings.eviction_budget_minimum}) are removed as expired per "
        f"{settings.eviction_window_seconds:g}s, the rest held SUSPECT"
    )
    minimum = settings.self_preservation_min_members
    if minimum <= 0:
        return (
            f"self-preservation: in every datacenter {budget} ({env_name('eviction_budget_ratio')})"
        )
    return (
        f"self-preservation: a datacenter of fewer than {minimum} members loses its expired "
        f"nodes at once; in a larger one {budget} "
        f"({env_name('self_preservation_min_members')}, {env_name('eviction_budget_ratio')})"
    )


SECRET_FILE_VARIABLES = secret_variables(Settings)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds one --flag per setting; unset flags leave the value from the environment."""
    with_arguments(Settings, parser)


def apply_arguments(settings: Settings, namespace: argparse.Namespace) -> Settings:
    """`settings` overridden by the flags given in `namespace` (see add_arguments)."""
    overrides: dict[str, Any] = read_arguments(Settings, namespace)
    return dataclasses.replace(settings, **overrides)


def markdown_table() -> str:
    """The README's configuration table, generated from the fields above."""
    return "\n".join(table_rows(Settings))
