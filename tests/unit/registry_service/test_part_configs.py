"""Settings -> each part's typed config (part_configs.py): every field of every config comes from
the setting that names it, and no config field is left out of the mapping."""

from __future__ import annotations

import dataclasses
from typing import Any

from registry_service.part_configs import PartConfigs
from registry_service.settings import Settings

# (part, field[, field of the field]) -> the setting it comes from
MAPPING = {
    ("etcd", "endpoints"): "etcd_endpoints",
    ("etcd", "username"): "etcd_username",
    ("etcd", "password"): "etcd_password",
    ("etcd", "ca_file"): "etcd_ca_file",
    ("etcd", "cert_file"): "etcd_cert_file",
    ("etcd", "key_file"): "etcd_key_file",
    ("etcd", "request_timeout_seconds"): "etcd_request_timeout_seconds",
    ("etcd", "watch_stale_seconds"): "etcd_watch_stale_seconds",
    ("etcd", "outage_detection_seconds"): "etcd_outage_detection_seconds",
    ("hub", "history_revisions"): "watch_history_revisions",
    ("hub", "queue_messages"): "watch_queue_messages",
    ("hub", "progress_seconds"): "watch_progress_seconds",
    ("hub", "ack_deadline_seconds"): "ack_deadline_seconds",
    ("hub", "slice_subscribers"): "watch_fanout_slice_subscribers",
    ("evictor", "lease_ttl_seconds"): "evictor_lease_ttl_seconds",
    ("evictor", "poll_seconds"): "evictor_poll_seconds",
    ("evictor", "reconcile_seconds"): "evictor_reconcile_seconds",
    ("evictor", "dry_run"): "evictor_dry_run",
    ("evictor", "outage_grace_seconds"): "evictor_outage_grace_seconds",
    ("evictor", "policy", "ratio"): "eviction_budget_ratio",
    ("evictor", "policy", "minimum"): "eviction_budget_minimum",
    ("evictor", "policy", "window_seconds"): "eviction_window_seconds",
    ("evictor", "policy", "ceiling_seconds"): "suspect_ceiling_seconds",
    ("evictor", "policy", "type_minimum"): "eviction_budget_type_minimum",
    ("evictor", "policy", "min_members"): "self_preservation_min_members",
    ("registry", "keepalive_coalesce_seconds"): "keepalive_coalesce_seconds",
    ("registry", "damping", "penalty_per_flap"): "damping_penalty_per_flap",
    ("registry", "damping", "half_life_seconds"): "damping_half_life_seconds",
    ("registry", "damping", "suppress_penalty"): "damping_suppress_penalty",
    ("registry", "damping", "reuse_penalty"): "damping_reuse_penalty",
    ("registry", "damping", "max_suppress_seconds"): "damping_max_suppress_seconds",
    ("health", "damping", "penalty_per_flap"): "damping_penalty_per_flap",
    ("health", "damping", "half_life_seconds"): "damping_half_life_seconds",
    ("health", "damping", "suppress_penalty"): "damping_suppress_penalty",
    ("health", "damping", "reuse_penalty"): "damping_reuse_penalty",
    ("health", "damping", "max_suppress_seconds"): "damping_max_suppress_seconds",
    ("health", "concurrency"): "health_probe_concurrency",
    ("reads", "sync_timeout_seconds"): "etcd_request_timeout_seconds",
    ("servicer", "max_registrations_per_stream"): "keepalive_max_registrations_per_stream",
    ("servicer", "max_streams_per_peer"): "max_streams_per_peer",
    ("servicer", "keepalive_max_messages_per_second"): "keepalive_max_messages_per_second",
    ("admission", "bounds", "initial_limit"): "admission_initial_limit",
    ("admission", "bounds", "min_limit"): "admission_min_limit",
    ("admission", "bounds", "max_limit"): "admission_max_limit",
    ("admission", "loop_lag_seconds"): "admission_loop_lag_seconds",
    ("admission", "retry_after_seconds"): "admission_retry_after_seconds",
    ("admission", "max_waiting"): "admission_max_waiting",
    ("admission", "max_wait_seconds"): "admission_max_wait_seconds",
    ("grpc_keepalive", "min_ping_interval_seconds"): "grpc_min_ping_interval_seconds",
    ("grpc_keepalive", "max_ping_strikes"): "grpc_max_ping_strikes",
    ("grpc_keepalive", "keepalive_time_seconds"): "grpc_keepalive_time_seconds",
    ("grpc_keepalive", "keepalive_timeout_seconds"): "grpc_keepalive_timeout_seconds",
    ("identity_gc", "retention_seconds"): "identity_retention_seconds",
    ("identity_gc", "interval_seconds"): "identity_gc_interval_seconds",
    ("http", "header_timeout_seconds"): "http_header_timeout_seconds",
    ("http", "idle_timeout_seconds"): "http_idle_timeout_seconds",
    ("http", "max_connections_per_peer"): "http_max_connections_per_peer",
    ("http", "max_header_bytes"): "http_max_header_bytes",
    ("http", "max_header_line_bytes"): "max_metadata_bytes",
}
LIMITS = (("registry", "limits"), ("reads", "limits"))  # Settings.limits, the whole of it


def _distinct(index: int, default: Any) -> Any:
    """A value of the setting's type that no default and no other setting has."""
    if isinstance(default, bool):
        return not default
    if isinstance(default, int):
        return 7_000 + index
    if isinstance(default, float):
        return 7_000.5 + index
    if isinstance(default, tuple):
        return (f"host-{index}:2379",)
    return f"value-{index}"


def _at(configs: PartConfigs, path: tuple[str, ...]) -> Any:
    value: Any = configs
    for name in path:
        value = getattr(value, name)
    return value


def test_every_config_field_comes_from_its_setting():
    defaults = Settings()
    names = sorted(set(MAPPING.values()) | {"ttl_max_seconds", "id_max_length"})
    settings = Settings(
        **{name: _distinct(i, getattr(defaults, name)) for i, name in enumerate(names)}
    )
    configs = PartConfigs.from_settings(settings)
    for path, name in MAPPING.items():
        assert _at(configs, path) == getattr(settings, name), (path, name)
    for path in LIMITS:
        assert _at(configs, path) == settings.limits != defaults.limits


def test_no_config_field_is_left_out_of_the_mapping():
    mapped = set(MAPPING) | set(LIMITS)
    configs = PartConfigs.from_settings(Settings())
    for part in dataclasses.fields(PartConfigs):
        config = getattr(configs, part.name)
        for field in dataclasses.fields(config):
            path = (part.name, field.name)
            if dataclasses.is_dataclass(getattr(config, field.name)) and path not in LIMITS:
                inner = getattr(config, field.name)
                assert {(*path, f.name) for f in dataclasses.fields(inner)} <= mapped
            else:
                assert path in mapped, path
