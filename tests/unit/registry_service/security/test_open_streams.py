"""Which open streams a reloaded tokens file ends, and with what."""

from __future__ import annotations

import logging

import pytest

from registry_service.domain import Scope
from registry_service.errors import PermissionDeniedError, RegistryError, UnauthenticatedError
from registry_service.security.bearer_tokens import TokenTable
from registry_service.security.open_streams import REVOKED_MESSAGE, OpenStreams
from registry_service.security.permissions import ANYONE, Caller, caller_of

DC1 = Scope(datacenters=frozenset({"dc1"}))


def table(text: str) -> TokenTable:
    return TokenTable.parse(text, "tokens")


def metadata(token: str) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {token}")]


class Ended:
    """A stream's `end`: what it was ended with."""

    def __init__(self) -> None:
        self.errors: list[RegistryError] = []

    def __call__(self, error: RegistryError) -> None:
        self.errors.append(error)


def caller(tokens: TokenTable, token: str) -> Caller:
    found = caller_of(tokens, metadata(token))
    assert isinstance(found, Caller)
    return found


def reads_dc1(again: Caller) -> None:
    again.require_scope("watch", DC1)


def test_a_removed_token_ends_its_streams_once_and_leaves_the_others():
    tokens = table("a watch a-secret\nb watch b-secret\n")
    streams = OpenStreams(tokens, "WatchNodes")
    ended = {name: Ended() for name in ("a1", "a2", "b")}
    with (
        streams.following(caller(tokens, "a-secret"), metadata("a-secret"), reads_dc1, ended["a1"]),
        streams.following(caller(tokens, "a-secret"), metadata("a-secret"), reads_dc1, ended["a2"]),
        streams.following(caller(tokens, "b-secret"), metadata("b-secret"), reads_dc1, ended["b"]),
    ):
        assert len(streams) == 3
        tokens.replace(table("b watch b-secret\n"))
        tokens.replace(table("b watch b-secret\nc watch c-secret\n"))  # ended: not again
        for name in ("a1", "a2"):
            (error,) = ended[name].errors
            assert isinstance(error, UnauthenticatedError) and str(error) == REVOKED_MESSAGE
        assert ended["b"].errors == []
    assert len(streams) == 0  # closed streams are forgotten


def test_a_token_narrowed_below_the_stream_ends_it_with_the_scope_named():
    tokens = table("a watch a-secret\n")
    streams = OpenStreams(tokens, "WatchNodes")
    ended, kept = Ended(), Ended()
    everything = Scope()
    with (
        streams.following(caller(tokens, "a-secret"), metadata("a-secret"), reads_dc1, kept),
        streams.following(
            caller(tokens, "a-secret"),
            metadata("a-secret"),
            lambda again: again.require_scope("watch", everything),
            ended,
        ),
    ):
        tokens.replace(table("a watch:dc1 a-secret\n"))
    (error,) = ended.errors
    assert isinstance(error, PermissionDeniedError)
    assert str(error) == (
        "token 'a' lacks watch (every datacenter and type; its watch scopes: watch:dc1); ask "
        "only for the datacenters and types it may read"
    )
    assert kept.errors == []


def test_a_token_removed_before_its_stream_is_followed_ends_it_at_once():
    tokens = table("a watch a-secret\nb watch b-secret\n")
    streams = OpenStreams(tokens, "xDS")
    checked = caller(tokens, "a-secret")  # the stream's start, before the file changed
    tokens.replace(table("b watch b-secret\n"))
    ended = Ended()
    with streams.following(checked, metadata("a-secret"), reads_dc1, ended):
        assert [str(error) for error in ended.errors] == [REVOKED_MESSAGE]


def test_streams_no_token_of_the_file_decided_are_not_followed():
    tokens = table("a watch a-secret\n")
    streams = OpenStreams(tokens, "/v1/watch")
    ended = Ended()
    # The admin token or a client certificate (the caller is anyone), or no token at all.
    with (
        streams.following(ANYONE, metadata("admin-token"), reads_dc1, ended),
        streams.following(caller(tokens, "a-secret"), [], reads_dc1, ended),
    ):
        assert len(streams) == 0
        tokens.replace(table("b watch b-secret\n"))
    assert ended.errors == []


def test_one_line_per_reload_that_ends_streams(caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.INFO, logger="registry_service.security.open_streams")
    tokens = table("a watch a-secret\nb watch b-secret\n")
    streams = OpenStreams(tokens, "WatchNodes")
    with streams.following(caller(tokens, "a-secret"), metadata("a-secret"), reads_dc1, Ended()):
        tokens.replace(table("a watch a-secret\n"))  # ends nothing: says nothing
        tokens.replace(table("b watch b-secret\n"))
    assert [r.getMessage() for r in caplog.records] == [
        "ended 1 open WatchNodes stream: the tokens file read again no longer holds its token, "
        "or no longer grants what it reads"
    ]
