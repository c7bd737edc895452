"""Who a caller is: bearer tokens with scopes, shared by the gRPC port and the HTTP ports.

Tokens live in a file (`auth_tokens_file`), one per line:

    # name      scopes                         token
    fleet-dc1   register:dc1/data,watch:dc1    3f0c...e1
    dashboard   watch                          9a41...77
    prometheus  metrics                        77e0...3a
    auditor     admin:read:dc2                 c1b9...42
    ops         admin,register,watch           51d2...0c

Scopes (token_scopes.py has the grammar): `register` (Register, KeepAlive, Deregister), `watch`
(GetNodes, WatchNodes, AckWatch, and xDS), `xds` (the xDS aggregated discovery service only),
`metrics` (the admin port's /metrics), `admin:read` (every admin read, /metrics too),
`admin:write` (every admin write) and `admin` (both admin scopes). Each but `metrics` may be
narrowed to datacenters and types: `register:dc1/data`, `watch:*/session`, `admin:read:dc2`.
Without a tokens file every caller may do everything. Only the tokens' SHA-256 digests are
kept, compared in constant time.

The table is read again when the file changes (credential_files.py): `replace` swaps in the new
tokens at once for every part holding the table, so a token added works and a token removed is
refused from the next call on; then it calls back whoever asked (`on_replace`: open_streams.py,
which ends the open streams of a removed token). Nothing here knows a transport: a call's
metadata is any sequence of (key, value) pairs, as gRPC metadata or an HTTP header give.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from registry_service.security.token_scopes import Grants, ScopeError, parse_scopes

NO_TOKEN_MESSAGE = "no token: this registry requires a bearer token"
UNKNOWN_TOKEN_MESSAGE = (
    "unknown token: the bearer token sent is not one this registry knows (mistyped, removed "
    "from its tokens file, or another cluster's)"
)


class TokenFileError(ValueError):
    """The tokens file cannot be used; the message names the file and line."""


@dataclass(frozen=True, slots=True)
class Principal:
    """A token's holder: its name (never its secret) and what its scopes grant."""

    name: str
    grants: Grants

    def may(self, operation: str) -> bool:
        """Whether any of its scopes grants the operation, wherever it is narrowed to."""
        return self.grants.has(operation)


class Presented(enum.Enum):
    """Why a call has no principal: it sent no bearer token, or one the table does not hold."""

    NO_TOKEN = "no token"
    UNKNOWN_TOKEN = "unknown token"


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def token_digest(metadata: Any) -> bytes | None:
    """The SHA-256 digest of the bearer token a call presents; None when it presents none (what
    a long stream keeps to look its token up again, rather than the token itself)."""
    token = bearer_token(metadata)
    return None if token is None else _digest(token)


def bearer_token(metadata: Any) -> str | None:
    """The bearer tokens a call presents (`authorization: Bearer <token>`), the first one; None
    when it presents none (no header, another scheme, or an empty token)."""
    for key, value in metadata or ():
        if key.lower() == "authorization" and isinstance(value, str):
            scheme, _, token = value.strip().partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
    return None


class TokenTable:
    """The bearer tokens of one cluster; only their SHA-256 digests are kept in memory."""

    def __init__(self, principals: Mapping[bytes, Principal]) -> None:
        self._principals = dict(principals)
        self.generation = 0
        """Counts replacements: a long stream resolves its token again only when it moved."""
        self._replaced: list[Callable[[], None]] = []

    @property
    def enabled(self) -> bool:
        """Whether any token is configured (none: bearer tokens are not checked)."""
        return bool(self._principals)

    def __len__(self) -> int:
        return len(self._principals)

    def replace(self, other: TokenTable) -> None:
        """Takes `other`'s tokens in place of its own, at once (a reloaded tokens file)."""
        self._principals = dict(other._principals)
        self.generation += 1
        for callback in self._replaced:
            callback()

    def on_replace(self, callback: Callable[[], None]) -> None:
        """Calls `callback()` after each `replace`, on the caller's thread (the event loop's:
        the tokens file is read again there)."""
        self._replaced.append(callback)

    @classmethod
    def load(cls, path: str) -> TokenTable:
        """The tokens of the file (an empty table without a path).

        Raises:
            TokenFileError: the file cannot be read, a line is malformed or names an unknown
                or malformed scope, or it holds no token at all.
        """
        if not path:
            return cls({})
        try:
            text = Path(path).read_text()
        except (OSError, UnicodeDecodeError) as err:
            raise TokenFileError(f"cannot read {path} ({_reason(err)})") from None
        return cls.parse(text, path)

    @classmethod
    def parse(cls, text: str, path: str) -> TokenTable:
        """The tokens of a tokens file's text (`path` names it in errors)."""
        principals: dict[bytes, Principal] = {}
        for number, raw in enumerate(text.splitlines(), 1):
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            try:
                name, scopes, token = line.split()
            except ValueError:
                raise TokenFileError(f"{path}:{number}: expected 'name scopes token'") from None
            try:
                grants = parse_scopes(scopes)
            except ScopeError as err:
                raise TokenFileError(f"{path}:{number}: {err}") from None
            principals[_digest(token)] = Principal(name, grants)
        if not principals:
            raise TokenFileError(f"{path}: no tokens; remove the setting to run without tokens")
        return cls(principals)

    def identify(self, metadata: Any) -> Principal | None:
        """The principal whose token the call presents (`authorization: Bearer <token>`)."""
        principal = self.authenticate(metadata)
        return principal if isinstance(principal, Principal) else None

    def authenticate(self, metadata: Any) -> Principal | Presented:
        """The principal whose token the call presents, or why there is none: NO_TOKEN, or
        UNKNOWN_TOKEN (a token this table does not hold; which tokens it holds stays unsaid)."""
        digest = token_digest(metadata)
        if digest is None:
            return Presented.NO_TOKEN
        found = self.holder(digest)
        return found if found is not None else Presented.UNKNOWN_TOKEN

    def holder(self, digest: bytes) -> Principal | None:
        """The principal of the token with this digest (`token_digest`), compared with every
        known one in constant time; None when the table does not hold it."""
        found: Principal | None = None
        for known, principal in self._principals.items():
            if hmac.compare_digest(known, digest):
                found = principal
        return found


def _reason(err: OSError | UnicodeDecodeError) -> str:
    return (err.strerror or str(err)) if isinstance(err, OSError) else "not UTF-8 text"
