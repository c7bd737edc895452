"""The one table that maps the registry's errors to gRPC status codes (the edge of the service).

Anything not in the table is a bug: it is logged with its traceback under the call's request id,
and the caller gets INTERNAL with a message naming only that id, never the exception's text.
"""

from __future__ import annotations

import logging

import grpc

from registry_service.errors import (
    ConcurrentModificationError,
    CorruptRecordError,
    InvalidArgumentError,
    LeaseNotFoundError,
    NodeConflictError,
    NodeHeldError,
    NodeNotFoundError,
    NotLiveError,
    RegistryError,
    ResourceExhaustedError,
    StoreCompactedError,
    StoreError,
    StoreUnavailableError,
    SubscriptionNotFoundError,
    WrongDatacenterError,
)
from registry_service.logs import ensure_request_id

log = logging.getLogger(__name__)

CODES: dict[type[RegistryError], grpc.StatusCode] = {
    InvalidArgumentError: grpc.StatusCode.INVALID_ARGUMENT,
    NodeNotFoundError: grpc.StatusCode.NOT_FOUND,
    SubscriptionNotFoundError: grpc.StatusCode.NOT_FOUND,
    NodeConflictError: grpc.StatusCode.ALREADY_EXISTS,
    # Retrying helps only after the hold: the message says until when, and the trailing metadata
    # `grpc-retry-pushback-ms` (gRPC's own retry pushback) says it to programs (rpc/edge.py).
    NodeHeldError: grpc.StatusCode.FAILED_PRECONDITION,
    NotLiveError: grpc.StatusCode.FAILED_PRECONDITION,
    # Federation: the message names the datacenter whose registry to use (and its frontends).
    WrongDatacenterError: grpc.StatusCode.FAILED_PRECONDITION,
    ResourceExhaustedError: grpc.StatusCode.RESOURCE_EXHAUSTED,
    ConcurrentModificationError: grpc.StatusCode.ABORTED,
    StoreError: grpc.StatusCode.UNAVAILABLE,
    StoreUnavailableError: grpc.StatusCode.UNAVAILABLE,
    # The lease the request needed lapsed before its write (etcd that slow): nothing applied,
    # retrying is safe, as on any outage.
    LeaseNotFoundError: grpc.StatusCode.UNAVAILABLE,
    # Never reaches a caller today (the watch hub re-lists); if it did, a retry reads anew.
    StoreCompactedError: grpc.StatusCode.UNAVAILABLE,
    # A record in etcd is unreadable: no retry helps; the message names the key to repair.
    CorruptRecordError: grpc.StatusCode.DATA_LOSS,
}


def pushback_of(error: Exception) -> tuple[tuple[str, str], ...]:
    """Trailing metadata telling the caller when a retry can succeed (a held node's id)."""
    if isinstance(error, NodeHeldError):
        return (("grpc-retry-pushback-ms", str(max(1, round(error.retry_after_seconds * 1000)))),)
    return ()


def status_of(error: Exception) -> tuple[grpc.StatusCode, str]:
    """The status and message a caller gets for error."""
    for kind in type(error).__mro__:
        code = CODES.get(kind)
        if code is not None:
            return code, str(error)
    request_id = ensure_request_id()
    log.error("unexpected error, answered INTERNAL (request id %s)", request_id, exc_info=error)
    return (
        grpc.StatusCode.INTERNAL,
        f"internal error in the registry frontend (request id {request_id}); its log has the cause",
    )
