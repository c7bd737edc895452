"""The one switch over grpc's four kinds of method handler (the error edge and both interceptors
wrap handlers through it)."""

from __future__ import annotations

from typing import Any

import grpc
import pytest

from registry_service.rpc.handler_kinds import (
    HandlerKind,
    behaviour_of,
    handler_of,
    kind_of,
    rewrapped,
)


async def behaviour(request: Any, context: Any) -> Any:
    return request


def decode(raw: bytes) -> bytes:
    return raw


def encode(message: bytes) -> bytes:
    return message


FACTORIES = {
    HandlerKind.UNARY: grpc.unary_unary_rpc_method_handler,
    HandlerKind.CLIENT_STREAM: grpc.stream_unary_rpc_method_handler,
    HandlerKind.SERVER_STREAM: grpc.unary_stream_rpc_method_handler,
    HandlerKind.BIDI_STREAM: grpc.stream_stream_rpc_method_handler,
}


@pytest.mark.parametrize("kind", list(HandlerKind))
def test_each_kind_is_read_and_rebuilt_as_grpc_builds_it(kind: HandlerKind):
    handler = FACTORIES[kind](behaviour, request_deserializer=decode, response_serializer=encode)
    assert kind_of(handler) is kind
    assert behaviour_of(handler) is behaviour
    assert (handler.request_streaming, handler.response_streaming) == (
        kind.request_streaming,
        kind.response_streaming,
    )
    seen: list[tuple[HandlerKind, Any]] = []

    def wrap(wrapped_kind: HandlerKind, inner: Any) -> Any:
        seen.append((wrapped_kind, inner))
        return encode  # any other function

    again = rewrapped(handler, wrap)
    assert seen == [(kind, behaviour)]
    assert kind_of(again) is kind and behaviour_of(again) is encode
    assert again.request_deserializer is decode and again.response_serializer is encode
    bare = handler_of(kind, behaviour)  # a refusal: the request is never decoded
    assert kind_of(bare) is kind and bare.request_deserializer is None


def test_the_kinds_are_named_as_go_grpc_prometheus_labels_them():
    assert [kind.value for kind in HandlerKind] == [
        "unary",
        "client_stream",
        "server_stream",
        "bidi_stream",
    ]
