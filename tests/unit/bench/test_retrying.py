"""The bench's writers send a Register again after a shed (its pushback) or an unknown outcome,
as the SDK does, and give up on anything else (bench/retrying.py)."""

from __future__ import annotations

import grpc
import grpc.aio
import pytest
from noderegistry.v1 import registry_pb2 as pb

from bench.retrying import register_retrying


def _error(code: grpc.StatusCode, trailers: tuple[tuple[str, str], ...] = ()) -> Exception:
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(*trailers), "test")


class _Stub:
    def __init__(self, *outcomes: Exception | pb.RegisterResponse) -> None:
        self.outcomes, self.calls = list(outcomes), 0

    async def Register(self, request: pb.RegisterRequest, timeout: float) -> pb.RegisterResponse:
        self.calls += 1
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome


SHED = _error(grpc.StatusCode.RESOURCE_EXHAUSTED, (("grpc-retry-pushback-ms", "1"),))


async def test_sheds_are_waited_out_and_do_not_count_as_failed_attempts():
    done = pb.RegisterResponse(token="t")
    stub = _Stub(SHED, SHED, SHED, _error(grpc.StatusCode.UNAVAILABLE), done)
    assert await register_retrying(stub, pb.RegisterRequest(), attempts=2) is done  # type: ignore[arg-type]
    assert stub.calls == 5


async def test_an_unknown_outcome_is_retried_up_to_the_attempts_and_others_at_once():
    unavailable = _error(grpc.StatusCode.UNAVAILABLE)
    stub = _Stub(unavailable, unavailable)
    with pytest.raises(grpc.aio.AioRpcError):
        await register_retrying(stub, pb.RegisterRequest(), attempts=2)  # type: ignore[arg-type]
    assert stub.calls == 2
    refused = _Stub(_error(grpc.StatusCode.INVALID_ARGUMENT))
    with pytest.raises(grpc.aio.AioRpcError):
        await register_retrying(refused, pb.RegisterRequest())  # type: ignore[arg-type]
    assert refused.calls == 1
