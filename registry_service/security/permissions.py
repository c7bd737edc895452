"""What one caller may do to which nodes: its token's grants checked where the node key or the
scope is known (the gRPC servicer, the xDS session, the HTTP handlers), after the transport's
gate (rpc/interceptors.AuthInterceptor, web/auth.HttpAuth) has checked that the token exists and
names the operation at all.

A refusal is PermissionDeniedError naming the scope that was needed and the caller's own scopes
of that operation (never another token's): "token 'fleet-dc1' lacks register:dc2/data (its
register scopes: register:dc1/data)".

Reads of a scope are refused, not cut, when the token may not see all of it (D114): a list cut
to what the token may see reads like datacenters emptied, and a watcher acting on it (a picker, a
proxy, a follower) would drop the nodes it was not shown.
"""

from __future__ import annotations

from dataclasses import dataclass

from registry_service.domain import Limits, NodeKey, Scope
from registry_service.errors import PermissionDeniedError, UnauthenticatedError
from registry_service.security.bearer_tokens import (
    NO_TOKEN_MESSAGE,
    UNKNOWN_TOKEN_MESSAGE,
    Presented,
    Principal,
    TokenTable,
)
from registry_service.security.token_scopes import EVERYTHING, Grants
from registry_service.validation import validate_key, validate_scope


@dataclass(frozen=True, slots=True)
class Caller:
    """A caller as far as scopes go: its token's name and grants (anyone: every grant)."""

    name: str
    grants: Grants

    def require(self, operation: str, key: NodeKey, limits: Limits | None = None) -> None:
        """Raises PermissionDeniedError unless the operation is granted on the node's
        datacenter and type. With `limits`, a malformed key is InvalidArgumentError first (what
        is wrong with a request is said before whether it would be allowed)."""
        if self.grants.allows(operation, key.datacenter, key.type):
            return
        if limits is not None:
            validate_key(key, limits)
        raise self._denied(operation, f"{operation}:{key.datacenter}/{key.type}")

    def require_scope(self, operation: str, scope: Scope, limits: Limits | None = None) -> None:
        """Raises PermissionDeniedError unless the operation is granted on every datacenter and
        type of the scope (an empty set asks for all of them); `limits` as for `require`."""
        needed = self.grants.missing(operation, scope.datacenters, scope.types)
        if needed is not None:
            if limits is not None:
                validate_scope(scope, limits)
            raise self._denied(
                operation, needed, "; ask only for the datacenters and types it may read"
            )

    def require_everywhere(self, operation: str) -> None:
        """Raises PermissionDeniedError unless the operation is granted on every datacenter and
        type (what a view of the whole cluster needs)."""
        needed = self.grants.missing(operation, (), ())
        if needed is not None:
            raise self._denied(operation, needed)

    def _denied(self, operation: str, needed: str, hint: str = "") -> PermissionDeniedError:
        have = self.grants.scopes(operation)
        detail = f"its {operation} scopes: {', '.join(have)}" if have else "none of that kind"
        if needed == operation:
            detail = f"every datacenter and type; {detail}"
        return PermissionDeniedError(f"token {self.name!r} lacks {needed} ({detail}){hint}")


ANYONE = Caller("", EVERYTHING)
"""The caller of a frontend without tokens (or with the admin token): granted everything."""


def caller_of(tokens: TokenTable, metadata: object) -> Caller | Presented:
    """The call's caller, or why it has none (no token, an unknown one); anyone without tokens."""
    if not tokens.enabled:
        return ANYONE
    principal = tokens.authenticate(metadata)
    if isinstance(principal, Principal):
        return Caller(principal.name, principal.grants)
    return principal


def require_caller(tokens: TokenTable, metadata: object) -> Caller:
    """The call's caller; UnauthenticatedError when it has none (a token removed from the file
    since the call began, for a stream that checks each message)."""
    found = caller_of(tokens, metadata)
    if isinstance(found, Caller):
        return found
    raise UnauthenticatedError(
        UNKNOWN_TOKEN_MESSAGE if found is Presented.UNKNOWN_TOKEN else NO_TOKEN_MESSAGE
    )
