"""Settings -> the typed config of each part of a frontend, in one place.

`Settings` is flat, as the environment and the README's configuration table are (one
`REGISTRY_<FIELD>` each). The parts take small typed configs instead, each defined beside the
part that uses it with a docstring per field: the etcd client's `EtcdConfig`, the watch hub's
`HubConfig`, the evictor's `EvictorConfig` (with its `BudgetPolicy`), the identity collector's
`IdentityGcConfig`, the registry's `RegistryConfig`, the reads' `ReadsConfig`, the gRPC
servicer's `ServicerConfig`, its admission control's `AdmissionConfig`, the gRPC port's
`KeepalivePolicy`, the HTTP ports' `HttpLimits` and the health checks' `HealthConfig` (flap
damping's `DampingPolicy` in it and in the registry's). `PartConfigs.from_settings` is the one
mapping between the two; the composition root (app.py) hands each part its own.
"""

from __future__ import annotations

from dataclasses import dataclass

from registry_service.core.concurrency_limit import LimitBounds
from registry_service.core.damping import DampingPolicy
from registry_service.core.evictor import EvictorConfig
from registry_service.core.health_keeper import HealthConfig
from registry_service.core.identity_gc import IdentityGcConfig
from registry_service.core.reads import ReadsConfig
from registry_service.core.registry import RegistryConfig
from registry_service.core.self_preservation import BudgetPolicy
from registry_service.hub.watch_hub import HubConfig
from registry_service.rpc.admission import AdmissionConfig
from registry_service.rpc.server import KeepalivePolicy
from registry_service.rpc.servicer import ServicerConfig
from registry_service.settings import Settings
from registry_service.store.etcd_client import EtcdConfig
from registry_service.web.connection_guard import HttpLimits


@dataclass(frozen=True)
class PartConfigs:
    """Every part's config, as one set of settings makes them."""

    etcd: EtcdConfig
    hub: HubConfig
    evictor: EvictorConfig
    identity_gc: IdentityGcConfig
    registry: RegistryConfig
    reads: ReadsConfig
    servicer: ServicerConfig
    admission: AdmissionConfig
    grpc_keepalive: KeepalivePolicy
    http: HttpLimits
    health: HealthConfig

    @classmethod
    def from_settings(cls, settings: Settings) -> PartConfigs:
        """Each part's config from the settings (the mapping, field by field)."""
        damping = DampingPolicy(
            penalty_per_flap=settings.damping_penalty_per_flap,
            half_life_seconds=settings.damping_half_life_seconds,
            suppress_penalty=settings.damping_suppress_penalty,
            reuse_penalty=settings.damping_reuse_penalty,
            max_suppress_seconds=settings.damping_max_suppress_seconds,
        )
        return cls(
            etcd=EtcdConfig(
                endpoints=settings.etcd_endpoints,
                username=settings.etcd_username,
                password=settings.etcd_password,
                ca_file=settings.etcd_ca_file,
                cert_file=settings.etcd_cert_file,
                key_file=settings.etcd_key_file,
                request_timeout_seconds=settings.etcd_request_timeout_seconds,
                watch_stale_seconds=settings.etcd_watch_stale_seconds,
                outage_detection_seconds=settings.etcd_outage_detection_seconds,
            ),
            hub=HubConfig(
                history_revisions=settings.watch_history_revisions,
                queue_messages=settings.watch_queue_messages,
                progress_seconds=settings.watch_progress_seconds,
                ack_deadline_seconds=settings.ack_deadline_seconds,
                slice_subscribers=settings.watch_fanout_slice_subscribers,
            ),
            evictor=EvictorConfig(
                lease_ttl_seconds=settings.evictor_lease_ttl_seconds,
                poll_seconds=settings.evictor_poll_seconds,
                reconcile_seconds=settings.evictor_reconcile_seconds,
                dry_run=settings.evictor_dry_run,
                outage_grace_seconds=settings.evictor_outage_grace_seconds,
                policy=BudgetPolicy(
                    ratio=settings.eviction_budget_ratio,
                    minimum=settings.eviction_budget_minimum,
                    window_seconds=settings.eviction_window_seconds,
                    ceiling_seconds=settings.suspect_ceiling_seconds,
                    type_minimum=settings.eviction_budget_type_minimum,
                    min_members=settings.self_preservation_min_members,
                ),
            ),
            identity_gc=IdentityGcConfig(
                retention_seconds=settings.identity_retention_seconds,
                interval_seconds=settings.identity_gc_interval_seconds,
            ),
            registry=RegistryConfig(
                limits=settings.limits,
                keepalive_coalesce_seconds=settings.keepalive_coalesce_seconds,
                damping=damping,
            ),
            reads=ReadsConfig(
                limits=settings.limits,
                sync_timeout_seconds=settings.etcd_request_timeout_seconds,
            ),
            servicer=ServicerConfig(
                max_registrations_per_stream=settings.keepalive_max_registrations_per_stream,
                max_streams_per_peer=settings.max_streams_per_peer,
                keepalive_max_messages_per_second=settings.keepalive_max_messages_per_second,
            ),
            admission=AdmissionConfig(
                bounds=LimitBounds(
                    initial_limit=settings.admission_initial_limit,
                    min_limit=settings.admission_min_limit,
                    max_limit=settings.admission_max_limit,
                ),
                loop_lag_seconds=settings.admission_loop_lag_seconds,
                retry_after_seconds=settings.admission_retry_after_seconds,
                max_waiting=settings.admission_max_waiting,
                max_wait_seconds=settings.admission_max_wait_seconds,
            ),
            grpc_keepalive=KeepalivePolicy(
                min_ping_interval_seconds=settings.grpc_min_ping_interval_seconds,
                max_ping_strikes=settings.grpc_max_ping_strikes,
                keepalive_time_seconds=settings.grpc_keepalive_time_seconds,
                keepalive_timeout_seconds=settings.grpc_keepalive_timeout_seconds,
            ),
            http=http_limits(settings),
            health=HealthConfig(concurrency=settings.health_probe_concurrency, damping=damping),
        )


def http_limits(settings: Settings) -> HttpLimits:
    """What one client may hold on any HTTP port (the API's, the admin ports)."""
    return HttpLimits(
        header_timeout_seconds=settings.http_header_timeout_seconds,
        idle_timeout_seconds=settings.http_idle_timeout_seconds,
        max_connections_per_peer=settings.http_max_connections_per_peer,
        max_header_bytes=settings.http_max_header_bytes,
        max_header_line_bytes=settings.max_metadata_bytes,
    )
