"""The SDK's errors. Users never see grpc's own exceptions; the cause stays attached (`__cause__`).

RegistryError
├── RegistryRPCError(code)          a frontend answered with an error status
│   ├── InvalidArgumentError        the request broke a rule (names the field and the limit)
│   ├── NodeNotFoundError           no such registration, or the token does not match
│   ├── AlreadyExistsError          the node is registered live by another owner
│   ├── PermissionDeniedError
│   ├── UnauthenticatedError
│   ├── ResourceExhaustedError      a limit of the frontend was reached
│   ├── AbortedError                the node changed concurrently; retrying is safe
│   └── RegistryUnavailableError    no frontend could be reached, or etcd is unavailable
└── WatchClosedError                the NodeWatch was closed
"""

from __future__ import annotations

import grpc


class RegistryError(Exception):
    """Base of every error the SDK raises."""


class RegistryRPCError(RegistryError):
    """A frontend answered with an error status.

    Attributes:
        code: the gRPC status code.
        message: the frontend's explanation.
    """

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message


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


class WatchClosedError(RegistryError):
    """The NodeWatch was closed (by its owner, or because its client closed)."""


_BY_CODE: dict[grpc.StatusCode, type[RegistryRPCError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgumentError,
    grpc.StatusCode.OUT_OF_RANGE: InvalidArgumentError,
    grpc.StatusCode.NOT_FOUND: NodeNotFoundError,
    grpc.StatusCode.ALREADY_EXISTS: AlreadyExistsError,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDeniedError,
    grpc.StatusCode.UNAUTHENTICATED: UnauthenticatedError,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhaustedError,
    grpc.StatusCode.ABORTED: AbortedError,
    grpc.StatusCode.UNAVAILABLE: RegistryUnavailableError,
    grpc.StatusCode.DEADLINE_EXCEEDED: RegistryUnavailableError,
}
_CODE_BY_NUMBER = {code.value[0]: code for code in grpc.StatusCode}


def error_for(code: grpc.StatusCode, message: str) -> RegistryRPCError:
    return _BY_CODE.get(code, RegistryRPCError)(code, message)


def error_for_number(number: int, message: str) -> RegistryRPCError:
    """For per-item codes (KeepAlive answers carry a gRPC code number)."""
    return error_for(_CODE_BY_NUMBER.get(number, grpc.StatusCode.UNKNOWN), message)


def from_rpc_error(err: grpc.aio.AioRpcError, target: str = "") -> RegistryRPCError:
    details = err.details() or err.code().name
    if err.code() == grpc.StatusCode.UNAVAILABLE and target:
        details = f"{details} (frontend {target})"
    return error_for(err.code(), details)
