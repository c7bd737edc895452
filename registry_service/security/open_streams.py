"""Open streams end when their token is revoked: a tokens file read again (credential_files.py)
looks up the token of every open WatchNodes, xDS and /v1/watch stream, and ends at once each
stream whose token the file no longer holds (UNAUTHENTICATED, `REVOKED_MESSAGE`) or no longer
grants what the stream reads (PERMISSION_DENIED naming the scope, as at the start of a stream).
The streams of the tokens still valid are left alone.

Without this a removed token went on receiving changes on the streams it had open, for as long
as they stayed up (days, for a proxy), though every new call was refused. A stream's own calls
cost nothing more: it is looked at only when the file was read again, and only the streams
opened with a token of the file are kept (not a frontend without tokens, not the admin token,
not a client certificate, which the tokens file does not decide). Each distinct token is looked
up once per reload (a digest, compared in constant time with every known one), whatever the
number of streams it holds open. Only the token's digest is kept, never the token.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from registry_service.errors import RegistryError, UnauthenticatedError
from registry_service.security.bearer_tokens import TokenTable, token_digest
from registry_service.security.permissions import ANYONE, Caller

log = logging.getLogger(__name__)

REVOKED_MESSAGE = (
    "token revoked: the bearer token this stream was opened with is no longer one this registry "
    "knows (removed from its tokens file); open a new stream with a current token"
)

Check = Callable[[Caller], None]
"""Raises (PermissionDeniedError naming the scope) unless the caller's grants still cover what
the stream reads; may keep the caller (an xDS stream checks the names it is asked later with
it)."""
End = Callable[[RegistryError], None]
"""Ends the stream with the error (its status, or its error event), without waiting."""


@dataclass(eq=False)
class _Stream:
    check: Check
    end: End
    ended: bool = False


class OpenStreams:
    """The open streams of one surface (the Registry service, xDS, the HTTP API) by token."""

    def __init__(self, tokens: TokenTable, kind: str) -> None:
        """`kind`: what the streams are, for the log line (`WatchNodes`, `xDS`, `/v1/watch`)."""
        self._tokens = tokens
        self._kind = kind
        self._by_digest: dict[bytes, set[_Stream]] = {}
        tokens.on_replace(self.recheck)

    def __len__(self) -> int:
        return sum(len(streams) for streams in self._by_digest.values())

    @contextlib.contextmanager
    def following(self, caller: Caller, metadata: object, check: Check, end: End) -> Iterator[None]:
        """While the block runs (the stream is open), a reloaded tokens file that drops the
        stream's token, or its grants for what `check` checks, calls `end` with the error.

        `caller`: the stream's, as checked when it opened (ANYONE: no token of the file decided
        it, and nothing is followed); `metadata`: the call's, which carry the token. The token
        is looked up again here: a file read again since the caller was checked ends the stream
        at once.
        """
        digest = token_digest(metadata)
        if caller is ANYONE or digest is None or not self._tokens.enabled:
            yield
            return
        stream = _Stream(check, end)
        held = self._by_digest.setdefault(digest, set())
        held.add(stream)
        try:
            self._check(digest, [stream])
            yield
        finally:
            held.discard(stream)
            if not held and self._by_digest.get(digest) is held:
                del self._by_digest[digest]

    def recheck(self) -> None:
        """Looks up every open stream's token in the table as it is now, and ends those it no
        longer allows (called after each replacement of the table)."""
        ended = sum(
            self._check(digest, list(streams)) for digest, streams in list(self._by_digest.items())
        )
        if ended:
            log.info(
                "ended %d open %s stream%s: the tokens file read again no longer holds %s token, "
                "or no longer grants what %s",
                ended,
                self._kind,
                *(("", "its", "it reads") if ended == 1 else ("s", "their", "they read")),
            )

    def _check(self, digest: bytes, streams: list[_Stream]) -> int:
        principal = self._tokens.holder(digest)
        caller = Caller(principal.name, principal.grants) if principal is not None else None
        ended = 0
        for stream in streams:
            if stream.ended:
                continue
            error: RegistryError | None = None
            if caller is None:
                error = UnauthenticatedError(REVOKED_MESSAGE)
            else:
                try:
                    stream.check(caller)
                except RegistryError as err:
                    error = err
            if error is not None:
                stream.ended = True
                stream.end(error)
                ended += 1
        return ended
