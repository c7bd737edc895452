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
    """Base of every error the SDK raises.

    grpc's own exceptions never reach the caller; where one caused the error, it is attached as
    `__cause__`.
    """


class RegistryRPCError(RegistryError):
    """A call failed with a status (from a frontend, or from the SDK's own checks).

    Catch a subclass for the codes that have one, or compare `code` with `StatusCode`.

    Args:
        code: the status.
        message: what went wrong and, where it helps, what to change.
        retry_after_seconds: when the registry said how long until a retry can succeed.

    Attributes:
        code: the status, a `StatusCode`.
        message: what went wrong and, where it helps, what to change.
        retry_after_seconds: seconds until a retry can succeed, when the registry said so (gRPC's
            retry pushback); otherwise None.
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
    """A rule was broken: the message names the field or argument and the limit.

    Raised by the SDK before anything is sent (a missing field, a value out of range) or by the
    frontend (its patterns and limits, which are its settings). Codes INVALID_ARGUMENT and
    OUT_OF_RANGE. Fix the request; a retry as it is fails again.
    """


class NodeNotFoundError(RegistryRPCError):
    """No such registration, or the token does not match it (code NOT_FOUND).

    A `Registration` that gets it while renewing registers anew by itself.
    """


class AlreadyExistsError(RegistryRPCError):
    """The node is registered live by another owner (code ALREADY_EXISTS)."""


class PermissionDeniedError(RegistryRPCError):
    """The bearer token lacks the scope the call needs (code PERMISSION_DENIED)."""


class UnauthenticatedError(RegistryRPCError):
    """The frontend wants a bearer token and got none, or one it does not know (UNAUTHENTICATED)."""


class ResourceExhaustedError(RegistryRPCError):
    """A limit of the frontend was reached (code RESOURCE_EXHAUSTED); the message names it."""


class AbortedError(RegistryRPCError):
    """The node changed concurrently too often (code ABORTED); retrying is safe."""


class RegistryUnavailableError(RegistryRPCError):
    """No frontend could be reached, or the frontend could not reach etcd.

    Codes UNAVAILABLE and DEADLINE_EXCEEDED: retry later (on UNAVAILABLE the SDK has already
    tried each of its targets once).
    """


class FailedPreconditionError(RegistryRPCError):
    """The registry's state refuses the call for now (code FAILED_PRECONDITION).

    An operator evicted the node and holds its id out (`retry_after_seconds` says how long), or
    the node belongs to another datacenter's registry (the message names it).
    """


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
    """The error of the tree that stands for `code`.

    Args:
        code: the status.
        message: the error's message.
        retry_after_seconds: the registry's retry pushback, if it gave one.

    Returns:
        An instance of the most specific class for the code (`RegistryRPCError` itself when no
        subclass stands for it).
    """
    return _BY_CODE.get(code, RegistryRPCError)(
        code, message, retry_after_seconds=retry_after_seconds
    )


def error_for_number(number: int, message: str) -> RegistryRPCError:
    """The error for a code that arrives as a number (each KeepAlive answer carries its own).

    Args:
        number: gRPC's number of the code; an unknown number reads as UNKNOWN.
        message: the error's message.

    Returns:
        The error, as `error_for` makes it.
    """
    try:
        code = StatusCode(number)
    except ValueError:
        code = StatusCode.UNKNOWN
    return error_for(code, message)


def invalid_argument(message: str) -> InvalidArgumentError:
    """An argument the SDK refuses before anything is sent."""
    return InvalidArgumentError(StatusCode.INVALID_ARGUMENT, message)
