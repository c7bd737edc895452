"""The service's error tree. `rpc/status.py` alone turns these into gRPC status codes.

RegistryError
├── InvalidArgumentError     bad input; nothing was written
├── NodeNotFoundError        no such registration, or a token that does not match it
├── SubscriptionNotFoundError  an AckWatch for a stream this frontend does not serve
├── NodeConflictError        the node is registered live by another owner
├── ResourceExhaustedError   a configured limit was reached
└── StoreUnavailableError    etcd cannot be reached, has no leader, or timed out
    └── ShuttingDownError    this frontend is stopping; another one will serve
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


class ResourceExhaustedError(RegistryError):
    """A configured limit (registrations per stream, queue size, ...) was reached."""


class StoreUnavailableError(RegistryError):
    """etcd did not answer in time, has no leader, or refused the connection."""


class ShuttingDownError(StoreUnavailableError):
    """The frontend is shutting down; clients should move to another frontend."""


class StoreCompactedError(Exception):
    """Internal signal: a watch start revision was compacted; the caller must re-list.

    Attributes:
        compact_revision: the oldest revision etcd still has.
    """

    def __init__(self, compact_revision: int) -> None:
        super().__init__(f"revision compacted; etcd keeps history from {compact_revision}")
        self.compact_revision = compact_revision


class ConcurrentModificationError(RegistryError):
    """The node changed under the request again and again; retrying the request is safe."""
