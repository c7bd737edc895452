"""The one table that maps the registry's errors to gRPC status codes (the edge of the service),
and the HTTP status of each code, for the HTTP surfaces (web/edge.py): an error reaches an HTTP
caller with the code and message a gRPC caller gets, so nothing maps an error a second time.

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
    OverloadedError,
    PermissionDeniedError,
    RegistryError,
    ResourceExhaustedError,
    StoreCompactedError,
    StoreError,
    StoreUnavailableError,
    SubscriptionNotFoundError,
    UnauthenticatedError,
    WrongDatacenterError,
)
from registry_service.telemetry.logs import ensure_request_id

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
    # A token narrowed to other datacenters or types (token_scopes.py); the message names the
    # scope that was needed.
    PermissionDeniedError: grpc.StatusCode.PERMISSION_DENIED,
    UnauthenticatedError: grpc.StatusCode.UNAUTHENTICATED,
    ResourceExhaustedError: grpc.StatusCode.RESOURCE_EXHAUSTED,
    # Renewals first (D72): the message says to retry later, `grpc-retry-pushback-ms` says when.
    OverloadedError: grpc.StatusCode.RESOURCE_EXHAUSTED,
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


# grpc-gateway's mapping, but FAILED_PRECONDITION: 409 (the node's state is in the way: not live,
# or held), as the admin port has always answered.
HTTP_STATUSES: dict[grpc.StatusCode, int] = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.FAILED_PRECONDITION: 409,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
}


def http_status(code: grpc.StatusCode) -> int:
    """The HTTP status of a gRPC code (500 for INTERNAL, DATA_LOSS, UNKNOWN)."""
    return HTTP_STATUSES.get(code, 500)


def code_of_http_status(status: int) -> grpc.StatusCode:
    """The gRPC code an HTTP status stands for (the first in the table; 405, a method a path
    does not answer, is UNIMPLEMENTED), UNKNOWN if none."""
    if status == 405:
        return grpc.StatusCode.UNIMPLEMENTED
    codes = (code for code, value in HTTP_STATUSES.items() if value == status)
    return next(codes, grpc.StatusCode.UNKNOWN)


def retry_after_of(error: Exception) -> float:
    """Seconds after which a retry can succeed (a held node's id, an overloaded frontend); 0 when
    the error does not say."""
    if isinstance(error, NodeHeldError | OverloadedError):
        return error.retry_after_seconds
    return 0.0


def pushback_of(error: Exception) -> tuple[tuple[str, str], ...]:
    """Trailing metadata telling the caller when a retry can succeed (`retry_after_of`)."""
    if isinstance(error, NodeHeldError | OverloadedError):
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
