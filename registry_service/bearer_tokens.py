"""Who a caller is: bearer tokens with scopes, shared by the gRPC port and the admin port.

Tokens live in a file (`auth_tokens_file`), one per line:

    # name      scopes               token
    fleet       register,watch       3f0c...e1
    dashboard   watch                9a41...77
    prometheus  metrics              77e0...3a
    auditor     admin:read           c1b9...42
    ops         admin,register,watch 51d2...0c

Scopes: `register` (Register, KeepAlive, Deregister), `watch` (GetNodes, WatchNodes, AckWatch,
and xDS), `xds` (the xDS aggregated discovery service only: a mesh's proxies and gRPC clients),
`metrics` (the admin port's /metrics), `admin:read` (every admin read, /metrics too),
`admin:write` (every admin write) and `admin` (both admin scopes, its meaning before they were
split). Without a tokens file every caller may do everything. Only the tokens' SHA-256 digests
are kept, compared in constant time. Nothing here knows a transport: a call's metadata is any
sequence of (key, value) pairs, as gRPC metadata or an HTTP header give.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCOPES = frozenset({"register", "watch", "xds", "metrics", "admin", "admin:read", "admin:write"})
# What a scope grants besides itself.
_IMPLIED = {
    "watch": frozenset({"xds"}),
    "admin": frozenset({"admin:read", "admin:write", "metrics"}),
    "admin:read": frozenset({"metrics"}),
}


def granted(scopes: frozenset[str]) -> frozenset[str]:
    """The scopes a set of scopes grants, implied ones included (`admin` is read and write)."""
    return scopes.union(*(_IMPLIED.get(scope, frozenset()) for scope in scopes))


class TokenFileError(ValueError):
    """The tokens file cannot be used; the message names the file and line."""


@dataclass(frozen=True, slots=True)
class Principal:
    name: str
    scopes: frozenset[str]

    def may(self, scope: str) -> bool:
        return scope in granted(self.scopes)


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class TokenTable:
    """The bearer tokens of one cluster; only their SHA-256 digests are kept in memory."""

    def __init__(self, principals: Mapping[bytes, Principal]) -> None:
        self._principals = dict(principals)

    @property
    def enabled(self) -> bool:
        return bool(self._principals)

    @classmethod
    def load(cls, path: str) -> TokenTable:
        if not path:
            return cls({})
        principals: dict[bytes, Principal] = {}
        try:
            text = Path(path).read_text()
        except (OSError, UnicodeDecodeError) as err:
            raise TokenFileError(f"cannot read {path} ({_reason(err)})") from None
        for number, raw in enumerate(text.splitlines(), 1):
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            try:
                name, scopes, token = line.split()
            except ValueError:
                raise TokenFileError(f"{path}:{number}: expected 'name scopes token'") from None
            wanted = frozenset(scopes.split(","))
            if not wanted <= SCOPES:
                raise TokenFileError(f"{path}:{number}: unknown scope {sorted(wanted - SCOPES)}")
            principals[_digest(token)] = Principal(name, wanted)
        if not principals:
            raise TokenFileError(f"{path}: no tokens; remove the setting to run without tokens")
        return cls(principals)

    def identify(self, metadata: Any) -> Principal | None:
        """The principal whose token the call presents (`authorization: Bearer <token>`)."""
        for key, value in metadata or ():
            if key == "authorization" and isinstance(value, str) and value.startswith("Bearer "):
                digest = _digest(value.removeprefix("Bearer ").strip())
                for known, principal in self._principals.items():
                    if hmac.compare_digest(known, digest):
                        return principal
        return None

    def allows(self, metadata: Any, scope: str) -> bool:
        principal = self.identify(metadata)
        return principal is not None and principal.may(scope)


def _reason(err: OSError | UnicodeDecodeError) -> str:
    return (err.strerror or str(err)) if isinstance(err, OSError) else "not UTF-8 text"
