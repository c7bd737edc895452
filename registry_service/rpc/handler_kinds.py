"""The four kinds of gRPC method handler, switched over once.

grpc describes a method handler by which of four attributes is set (`unary_unary`,
`unary_stream`, `stream_unary`, `stream_stream`) and builds one with four factories. Whatever
wraps a handler (the error edge, rpc/edge.py; the interceptors, rpc/interceptors.py) needs its
kind, its behaviour, and a new handler of the same kind: here, from one table, instead of an
if-chain in each of them.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Any

import grpc

Behaviour = Callable[..., Any]
"""A handler's function: (request or request iterator, context) -> response or responses."""


class HandlerKind(enum.Enum):
    """A method's kind, valued as go-grpc-prometheus's `grpc_type` label names it."""

    UNARY = "unary"
    CLIENT_STREAM = "client_stream"
    SERVER_STREAM = "server_stream"
    BIDI_STREAM = "bidi_stream"

    @property
    def request_streaming(self) -> bool:
        """The behaviour takes a request iterator rather than one request."""
        return self in (HandlerKind.CLIENT_STREAM, HandlerKind.BIDI_STREAM)

    @property
    def response_streaming(self) -> bool:
        """The behaviour is an async generator (or writes with `context.write`)."""
        return self in (HandlerKind.SERVER_STREAM, HandlerKind.BIDI_STREAM)


# kind -> (grpc's attribute holding the behaviour, grpc's factory of such a handler)
_GRPC: dict[HandlerKind, tuple[str, Callable[..., grpc.RpcMethodHandler]]] = {
    HandlerKind.UNARY: ("unary_unary", grpc.unary_unary_rpc_method_handler),
    HandlerKind.CLIENT_STREAM: ("stream_unary", grpc.stream_unary_rpc_method_handler),
    HandlerKind.SERVER_STREAM: ("unary_stream", grpc.unary_stream_rpc_method_handler),
    HandlerKind.BIDI_STREAM: ("stream_stream", grpc.stream_stream_rpc_method_handler),
}
_BY_STREAMING = {(kind.request_streaming, kind.response_streaming): kind for kind in HandlerKind}


def kind_of(handler: grpc.RpcMethodHandler) -> HandlerKind:
    """Which of the four kinds `handler` is (from whether its request and response stream)."""
    return _BY_STREAMING[(bool(handler.request_streaming), bool(handler.response_streaming))]


def behaviour_of(handler: grpc.RpcMethodHandler) -> Behaviour:
    """The function the handler runs."""
    behaviour: Behaviour = getattr(handler, _GRPC[kind_of(handler)][0])
    return behaviour


def handler_of(
    kind: HandlerKind, behaviour: Behaviour, codecs: grpc.RpcMethodHandler | None = None
) -> grpc.RpcMethodHandler:
    """A handler of `kind` running `behaviour`, with the (de)serializers of `codecs` (None:
    none, the request is not even decoded: for a refusal)."""
    factory = _GRPC[kind][1]
    if codecs is None:
        return factory(behaviour)
    return factory(
        behaviour,
        request_deserializer=codecs.request_deserializer,
        response_serializer=codecs.response_serializer,
    )


def rewrapped(
    handler: grpc.RpcMethodHandler, wrap: Callable[[HandlerKind, Behaviour], Behaviour]
) -> grpc.RpcMethodHandler:
    """The same handler (kind, serializers) running `wrap(kind, its behaviour)`."""
    kind = kind_of(handler)
    return handler_of(kind, wrap(kind, behaviour_of(handler)), handler)
