import contextvars
import logging

import grpc
import grpc.aio

from registry_service import errors
from registry_service.rpc.status import CODES, status_of
from registry_service.store.etcd_client.connection import translate
from registry_service.telemetry.logs import request_id


def _subclasses(cls: type) -> set[type]:
    found = set()
    for sub in cls.__subclasses__():
        found |= {sub, *_subclasses(sub)}
    return found


def test_every_registry_error_has_a_specific_status():
    for kind in _subclasses(errors.RegistryError):
        code, message = status_of(kind("the message"))
        assert code not in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN), kind
        assert message == "the message"
    assert set(CODES) <= _subclasses(errors.RegistryError)


def test_store_errors_map_to_what_a_caller_can_do_about_them():
    assert status_of(errors.StoreUnavailableError("x"))[0] == grpc.StatusCode.UNAVAILABLE
    assert status_of(errors.ShuttingDownError("x"))[0] == grpc.StatusCode.UNAVAILABLE
    assert status_of(errors.LeaseNotFoundError("x"))[0] == grpc.StatusCode.UNAVAILABLE
    assert status_of(errors.StoreCompactedError("x"))[0] == grpc.StatusCode.UNAVAILABLE
    assert status_of(errors.CorruptRecordError("x"))[0] == grpc.StatusCode.DATA_LOSS


def test_an_unexpected_error_is_internal_naming_only_the_request_id_it_is_logged_under(caplog):
    token = request_id.set("c0ffee")
    try:
        error = KeyError("secret detail")
        code, message = status_of(error)
    finally:
        request_id.reset(token)
    assert code == grpc.StatusCode.INTERNAL
    assert "secret" not in message and "KeyError" not in message
    assert "request id c0ffee" in message
    (record,) = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert "request id c0ffee" in record.getMessage()
    assert record.exc_info is not None and record.exc_info[1] is error


def test_an_unexpected_error_outside_any_request_gets_a_new_request_id(caplog):
    code, message = contextvars.copy_context().run(status_of, RuntimeError("boom"))
    assert code == grpc.StatusCode.INTERNAL
    (record,) = [r for r in caplog.records if r.levelno == logging.ERROR]
    new_id = record.getMessage().rsplit("request id ", 1)[1].rstrip(")")
    assert new_id and new_id != "-"
    assert f"request id {new_id}" in message


def _etcd_error(code: grpc.StatusCode, details: str) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details)


def test_etcd_errors_become_the_store_s_own_types():
    lease = _etcd_error(grpc.StatusCode.NOT_FOUND, "etcdserver: requested lease not found")
    compacted = _etcd_error(
        grpc.StatusCode.OUT_OF_RANGE, "etcdserver: mvcc: required revision has been compacted"
    )
    future = _etcd_error(
        grpc.StatusCode.OUT_OF_RANGE, "etcdserver: mvcc: required revision is a future revision"
    )
    no_leader = _etcd_error(grpc.StatusCode.UNAVAILABLE, "etcdserver: no leader")
    assert type(translate(lease, "txn")) is errors.LeaseNotFoundError
    assert type(translate(compacted, "range")) is errors.StoreCompactedError
    assert type(translate(future, "range")) is errors.StoreUnavailableError
    assert type(translate(no_leader, "put")) is errors.StoreUnavailableError
    assert str(translate(no_leader, "put")) == "etcd put failed: UNAVAILABLE: etcdserver: no leader"


def test_an_etcd_deadline_is_unavailable_with_a_hint_never_a_bare_deadline_exceeded():
    # Issue 11, problem 9: the first seconds of an etcd outage ended in DEADLINE_EXCEEDED.
    deadline = _etcd_error(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded")
    error = translate(deadline, "txn", 5.0)
    assert type(error) is errors.StoreUnavailableError
    code, message = status_of(error)
    assert code == grpc.StatusCode.UNAVAILABLE
    assert message == (
        "etcd did not answer txn within 5s (it may have lost its leader or quorum, or be "
        "overloaded); the outcome is unknown: retry, on another frontend if this one keeps failing"
    )


def test_credentials_etcd_refuses_are_an_access_error_which_start_up_does_not_retry():
    refused = _etcd_error(
        grpc.StatusCode.INVALID_ARGUMENT,
        "etcdserver: authentication failed, invalid user ID or password",
    )
    denied = _etcd_error(grpc.StatusCode.PERMISSION_DENIED, "etcdserver: permission denied")
    for error in (refused, denied):
        assert type(translate(error, "range")) is errors.StoreAccessError
        assert status_of(translate(error, "range"))[0] == grpc.StatusCode.UNAVAILABLE
