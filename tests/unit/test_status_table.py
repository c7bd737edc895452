import grpc

from registry_service import errors
from registry_service.rpc.status import CODES, status_of


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


def test_unexpected_errors_are_internal_without_their_text():
    code, message = status_of(KeyError("secret detail"))
    assert code == grpc.StatusCode.INTERNAL
    assert "secret" not in message
