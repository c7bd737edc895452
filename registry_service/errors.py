"""The service's error tree. `rpc/status.py` alone turns these into gRPC status codes.

RegistryError
├── InvalidArgumentError       bad input; nothing was written
├── NodeNotFoundError          no such registration, or a token that does not match it
├── SubscriptionNotFoundError  an AckWatch for a stream this frontend does not serve
├── NodeConflictError          the node is registered live by another owner
├── NodeHeldError              an operator evicted the node and holds its id out for a while
├── WrongDatacenterError       the node belongs to another datacenter's registry (federation)
├── UnauthenticatedError       no bearer token where one is needed, or an unknown one
├── PermissionDeniedError      the caller's token lacks the scope (the message names it)
├── NotLiveError               an operator action on a node that is not a live member
├── ResourceExhaustedError     a configured limit was reached
│   └── OverloadedError        the frontend serves renewals first: retry after the pushback
├── ConcurrentModificationError  the node kept changing under the request; retrying is safe
└── StoreError                 the store could not do what was asked; the subclass says what
    ├── StoreUnavailableError  etcd cannot be reached, has no leader, timed out or refused
    │   ├── ShuttingDownError  this frontend is stopping; another one will serve
    │   └── StoreAccessError   etcd refused the frontend's credentials or permissions
    ├── LeaseNotFoundError     a lease the request names is gone; the request did not apply
    ├── StoreCompactedError    the revision asked for is compacted; the caller must re-list
    └── CorruptRecordError     a record in etcd cannot be decoded; an operator must repair it

The store raises the StoreError subclasses (etcd's own errors, translated in one place,
`store/etcd_client/connection.translate`), so no caller reads `__cause__` or an error's text. A
guarded write that finds the world changed is not an error: it returns None (store/base.py).
"""

from __future__ import annotations


class RegistryError(Exception):
    """Base of every error the registry reports to a caller."""


class InvalidArgumentError(RegistryError):
    """The request is malformed or outside a configured limit; nothing was written."""


class NodeNotFoundError(RegistryError):
    """The registration does not exist (expired, deregistered) or the token does not match it."""


class SubscriptionNotFoundError(RegistryError):
    """No open WatchNodes stream with this subscription id on this frontend."""


class NodeConflictError(RegistryError):
    """The node id is registered live by another owner."""


class NodeHeldError(RegistryError):
    """An operator evicted the node with a hold: its id may register again after it."""

    def __init__(self, message: str, *, retry_after_seconds: float = 0.0) -> None:
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds


class WrongDatacenterError(RegistryError):
    """The node is of another datacenter, whose own registry alone writes it (federation)."""


class UnauthenticatedError(RegistryError):
    """The call presents no bearer token, or one the tokens file does not hold (or no longer
    does: a token removed from the file is refused from the next message on)."""


class PermissionDeniedError(RegistryError):
    """The caller's bearer token does not grant this operation on these nodes; the message
    names the scope that was needed (`register:dc2/data`)."""


class NotLiveError(RegistryError):
    """An operator's action needs a live member (renewing), and the node is not one."""


class ResourceExhaustedError(RegistryError):
    """A configured limit (registrations per stream, queue size, ...) was reached."""


class OverloadedError(ResourceExhaustedError):
    """The frontend refuses new work (a Register, a read) to keep serving renewals in time: a
    retry after `retry_after_seconds` may be taken."""

    def __init__(self, message: str, *, retry_after_seconds: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds


class ConcurrentModificationError(RegistryError):
    """The node changed under the request again and again; retrying the request is safe."""


class StoreError(RegistryError):
    """The store failed a call; what happened is the subclass."""


class StoreUnavailableError(StoreError):
    """etcd did not answer in time, has no leader, or refused the connection or the request."""


class ShuttingDownError(StoreUnavailableError):
    """The frontend is shutting down; clients should move to another frontend."""


class StoreAccessError(StoreUnavailableError):
    """etcd refused the frontend's user, password or role: a configuration error, which no
    retry mends (a frontend that meets it at start exits)."""


class LeaseNotFoundError(StoreError):
    """A lease named in the request no longer exists (expired or revoked); nothing applied."""


class StoreCompactedError(StoreError):
    """The revision a read or a watch starts from has been compacted; the caller must re-list."""


class CorruptRecordError(StoreError):
    """A record in etcd is not one this version can read; an operator must repair or delete it."""
