"""The SDK's errors carry its own StatusCode, never grpc's; grpc's errors map in one place."""

from __future__ import annotations

import grpc
import grpc.aio

from client_sdk import (
    AlreadyExistsError,
    FailedPreconditionError,
    InvalidArgumentError,
    NodeNotFoundError,
    RegistryRPCError,
    RegistryUnavailableError,
    StatusCode,
)
from client_sdk._errors import error_for, error_for_number
from client_sdk._transport import error_from_rpc


def rpc_error(code: grpc.StatusCode, details: str) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details)


def test_status_code_mirrors_every_grpc_code_by_name_and_number():
    mirrored = {(code.name, code.value) for code in StatusCode}
    assert {(code.name, code.value[0]) for code in grpc.StatusCode} == mirrored


def test_grpc_errors_become_the_sdks_with_its_status_code():
    err = error_from_rpc(rpc_error(grpc.StatusCode.ALREADY_EXISTS, "taken by another owner"))
    assert isinstance(err, AlreadyExistsError)
    assert err.code is StatusCode.ALREADY_EXISTS and not isinstance(err.code, grpc.StatusCode)
    assert (err.message, str(err)) == (
        "taken by another owner",
        "ALREADY_EXISTS: taken by another owner",
    )


def test_unavailable_names_the_frontend_and_deadlines_count_as_unavailable():
    err = error_from_rpc(rpc_error(grpc.StatusCode.UNAVAILABLE, "connect failed"), "10.0.0.1:50051")
    assert isinstance(err, RegistryUnavailableError)
    assert err.message == "connect failed (frontend 10.0.0.1:50051)"
    late = error_from_rpc(rpc_error(grpc.StatusCode.DEADLINE_EXCEEDED, ""))
    assert isinstance(late, RegistryUnavailableError)
    assert late.code is StatusCode.DEADLINE_EXCEEDED and late.message == "DEADLINE_EXCEEDED"


def test_a_deadline_run_out_here_names_the_frontend_and_the_deadline():
    late = error_from_rpc(
        rpc_error(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded"), "10.0.0.1:50051", 2.5
    )
    assert isinstance(late, RegistryUnavailableError)
    assert str(late) == (
        "DEADLINE_EXCEEDED: Deadline Exceeded: no answer from frontend 10.0.0.1:50051 within "
        "2.5s (the registry or its etcd may be unavailable)"
    )


def test_codes_without_a_subclass_are_the_base_error_with_their_code():
    err = error_for(StatusCode.INTERNAL, "request abc failed")
    assert type(err) is RegistryRPCError and err.code is StatusCode.INTERNAL
    assert isinstance(error_for(StatusCode.OUT_OF_RANGE, "x"), InvalidArgumentError)


def test_keepalive_code_numbers_map_like_statuses_and_unknown_numbers_are_unknown():
    lost = error_for_number(5, "lease not found")
    assert isinstance(lost, NodeNotFoundError) and lost.code is StatusCode.NOT_FOUND
    assert error_for_number(99, "?").code is StatusCode.UNKNOWN


def test_a_held_node_error_carries_when_to_retry_from_grpcs_retry_pushback():
    trailing = grpc.aio.Metadata(("grpc-retry-pushback-ms", "2500"))
    held = grpc.aio.AioRpcError(
        grpc.StatusCode.FAILED_PRECONDITION, grpc.aio.Metadata(), trailing, "held by token:ops"
    )
    err = error_from_rpc(held)
    assert isinstance(err, FailedPreconditionError) and err.retry_after_seconds == 2.5
    plain = error_from_rpc(rpc_error(grpc.StatusCode.FAILED_PRECONDITION, "x"))
    assert plain.retry_after_seconds is None
