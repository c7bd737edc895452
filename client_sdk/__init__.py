"""node-registry's client SDK: register nodes that stay registered, watch who joined and left.

    async with RegistryClient("127.0.0.1:50051") as client:
        registration = await client.register(Node("data-1", "data", "dc1", "10.0.0.5:9600"))
        watch = await client.watch_nodes(Scope.of(types="session"))
        async for event in watch.events():
            ...

For code that is not async, `SyncRegistryClient` offers the same calls, blocking. Errors are the
tree rooted at `RegistryError` (see `client_sdk._errors`), their codes the SDK's own `StatusCode`;
grpc's exceptions and codes never reach you.
"""

from noderegistry import __version__ as __version__

from client_sdk._bridge import SyncStream
from client_sdk._checks import Check, CheckKind
from client_sdk._client import RegistryClient
from client_sdk._config import ClientConfig, ShrinkReport, WatchConfig
from client_sdk._errors import (
    AbortedError,
    AlreadyExistsError,
    FailedPreconditionError,
    InvalidArgumentError,
    NodeNotFoundError,
    PermissionDeniedError,
    RegistryError,
    RegistryRPCError,
    RegistryUnavailableError,
    ResourceExhaustedError,
    StatusCode,
    TlsError,
    UnauthenticatedError,
    WatchClosedError,
)
from client_sdk._models import (
    Consistency,
    DatacenterState,
    EventType,
    Health,
    Node,
    NodeEvent,
    NodeKey,
    NodeList,
    NodeStatus,
    RegistrationState,
    RemovalReason,
    Scope,
    WatchStep,
    WatchStepKind,
)
from client_sdk._picker import Picker
from client_sdk._registration import Registration
from client_sdk._sync import SyncNodeWatch, SyncRegistration, SyncRegistryClient
from client_sdk._watch import EventStream, NodeWatch, StepStream

__all__ = [
    "AbortedError",
    "AlreadyExistsError",
    "Check",
    "CheckKind",
    "ClientConfig",
    "Consistency",
    "DatacenterState",
    "EventStream",
    "EventType",
    "FailedPreconditionError",
    "Health",
    "InvalidArgumentError",
    "Node",
    "NodeEvent",
    "NodeKey",
    "NodeList",
    "NodeNotFoundError",
    "NodeStatus",
    "NodeWatch",
    "PermissionDeniedError",
    "Picker",
    "Registration",
    "RegistrationState",
    "RegistryClient",
    "RegistryError",
    "RegistryRPCError",
    "RegistryUnavailableError",
    "RemovalReason",
    "ResourceExhaustedError",
    "Scope",
    "ShrinkReport",
    "StatusCode",
    "StepStream",
    "SyncNodeWatch",
    "SyncRegistration",
    "SyncRegistryClient",
    "SyncStream",
    "TlsError",
    "UnauthenticatedError",
    "WatchClosedError",
    "WatchConfig",
    "WatchStep",
    "WatchStepKind",
]
