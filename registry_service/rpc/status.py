"""The one table that maps the registry's errors to gRPC status codes (the edge of the service).

Anything not in the table is a bug: it is logged with its traceback and the caller gets INTERNAL
with a generic message, never the exception's text.
"""

from __future__ import annotations

import logging

import grpc

from registry_service.errors import (
    ConcurrentModificationError,
    InvalidArgumentError,
    NodeConflictError,
    NodeNotFoundError,
    RegistryError,
    ResourceExhaustedError,
    StoreUnavailableError,
    SubscriptionNotFoundError,
)

log = logging.getLogger(__name__)

CODES: dict[type[RegistryError], grpc.StatusCode] = {
    InvalidArgumentError: grpc.StatusCode.INVALID_ARGUMENT,
    NodeNotFoundError: grpc.StatusCode.NOT_FOUND,
    SubscriptionNotFoundError: grpc.StatusCode.NOT_FOUND,
    NodeConflictError: grpc.StatusCode.ALREADY_EXISTS,
    ResourceExhaustedError: grpc.StatusCode.RESOURCE_EXHAUSTED,
    StoreUnavailableError: grpc.StatusCode.UNAVAILABLE,
    ConcurrentModificationError: grpc.StatusCode.ABORTED,
}


def status_of(error: BaseException) -> tuple[grpc.StatusCode, str]:
    for kind in type(error).__mro__:
        code = CODES.get(kind)
        if code is not None:
            return code, str(error)
    log.error("unexpected error", exc_info=error)
    return grpc.StatusCode.INTERNAL, "internal error in the registry frontend; see its log"
