"""The SDK's errors and status codes. Users never see grpc's own exceptions or codes.

RegistryError
├── RegistryRPCError(code)          the call failed with a status (`code` is a `StatusCode`)
│   ├── InvalidArgumentError        a rule was broken (checked by the SDK or by the frontend; the
│   │                               message names the field and the limit)
│   ├── NodeNotFoundError           no such registration, or the token does not match
│   ├── AlreadyExistsError          the node is registered live by another owner
│   ├── PermissionDeniedError
│   ├── UnauthenticatedError
│   ├── ResourceExhaustedError      a limit of the frontend was reached
│   ├── AbortedError                the node changed concurrently; retrying is safe
│   ├── FailedPreconditionError     the registry's state refuses it for now (an operator holds
│   │                               the node's id out: `retry_after_seconds` says how long)
│   └── RegistryUnavailableError    no frontend could be reached, or etcd is unavailable
│       └── TlsError                the TLS handshake failed: the message says why (an expired
│                                   certificate, one the CA did not sign, a client certificate
│                                   required or refused, TLS on one side only)
└── WatchClosedError                the NodeWatch was closed

This module knows no grpc: the transport maps grpc's errors onto this tree (the original stays
attached as `__cause__`).
"""

from __future__ import annotations

import enum


class StatusCode(enum.IntEnum):
    """The status of a failed call: gRPC's codes, with gRPC's numbers, as the SDK's own enum.

    Compare `err.code` with these (`err.code is StatusCode.UNAVAILABLE`), never with
    `grpc.StatusCode`.
    """

    OK = 0
    CANCELLED = 1
    UNKNOWN = 2
    INVALID_ARGUMENT = 3
    DEADLINE_EXCEEDED = 4
    NOT_FOUND = 5
    ALREADY_EXISTS = 6
    PERMISSION_DENIED = 7
    RESOURCE_EXHAUSTED = 8
    FAILED_PRECONDITION = 9
    ABORTED = 10
    OUT_OF_RANGE = 11
    UNIMPLEMENTED = 12
    INTERNAL = 13
    UNAVAILABLE = 14
    DATA_LOSS = 15
    UNAUTHENTICATED = 16


class RegistryError(Exception):
    """Base of every error the SDK raises."""


class RegistryRPCError(RegistryError):
    """A call failed with a status (from a frontend, or from the SDK's own checks).

    Attributes:
        code: the status, a `StatusCode`.
        message: what went wrong and, where it helps, what to change.
    """

    def __init__(
        self, code: StatusCode, message: str, *, retry_after_seconds: float | None = None
    ) -> None:
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message
        self.retry_after_seconds = retry_after_seconds
        """When the registry said when a retry can succeed (gRPC's retry pushback): seconds."""


class InvalidArgumentError(RegistryRPCError):
    pass


class NodeNotFoundError(RegistryRPCError):
    pass


class AlreadyExistsError(RegistryRPCError):
    pass


class PermissionDeniedError(RegistryRPCError):
    pass


class UnauthenticatedError(RegistryRPCError):
    pass


class ResourceExhaustedError(RegistryRPCError):
    pass


class AbortedError(RegistryRPCError):
    pass


class RegistryUnavailableError(RegistryRPCError):
    pass


class FailedPreconditionError(RegistryRPCError):
    pass


class TlsError(RegistryUnavailableError):
    """A frontend could not be reached because the TLS handshake failed (code UNAVAILABLE).

    Attributes:
        setting: the ClientConfig field to change (`tls_ca_file`, `tls_cert_file`, ...).
    """

    def __init__(self, message: str, setting: str) -> None:
        super().__init__(StatusCode.UNAVAILABLE, message)
        self.setting = setting


class WatchClosedError(RegistryError):
    """The NodeWatch was closed (by its owner, or because its client closed)."""


_BY_CODE: dict[StatusCode, type[RegistryRPCError]] = {
    StatusCode.INVALID_ARGUMENT: InvalidArgumentError,
    StatusCode.OUT_OF_RANGE: InvalidArgumentError,
    StatusCode.NOT_FOUND: NodeNotFoundError,
    StatusCode.ALREADY_EXISTS: AlreadyExistsError,
    StatusCode.PERMISSION_DENIED: PermissionDeniedError,
    StatusCode.UNAUTHENTICATED: UnauthenticatedError,
    StatusCode.RESOURCE_EXHAUSTED: ResourceExhaustedError,
    StatusCode.ABORTED: AbortedError,
    StatusCode.FAILED_PRECONDITION: FailedPreconditionError,
    StatusCode.UNAVAILABLE: RegistryUnavailableError,
    StatusCode.DEADLINE_EXCEEDED: RegistryUnavailableError,
}


def error_for(
    code: StatusCode, message: str, *, retry_after_seconds: float | None = None
) -> RegistryRPCError:
    """The error of the tree that stands for `code`."""
    return _BY_CODE.get(code, RegistryRPCError)(
        code, message, retry_after_seconds=retry_after_seconds
    )


def error_for_number(number: int, message: str) -> RegistryRPCError:
    """For codes that arrive as numbers (each KeepAlive answer carries its own)."""
    try:
        code = StatusCode(number)
    except ValueError:
        code = StatusCode.UNKNOWN
    return error_for(code, message)


def invalid_argument(message: str) -> InvalidArgumentError:
    """An argument the SDK refuses before anything is sent."""
    return InvalidArgumentError(StatusCode.INVALID_ARGUMENT, message)
