"""An xDS stream's token read again: its new grants must still cover every resource it watches."""

from __future__ import annotations

from typing import Any

import pytest

from registry_service.domain import Limits
from registry_service.errors import PermissionDeniedError
from registry_service.security.permissions import Caller
from registry_service.security.token_scopes import parse_scopes
from registry_service.xds.names import parse_name
from registry_service.xds.session import EndpointWatch, ResourceCache, Session, XdsParts


async def _send(watch: EndpointWatch) -> None:
    """The protocol's sender; nothing is sent here."""


def session_watching(*names: str) -> Session:
    limits = Limits()
    reads: Any = None  # regrant reads nothing
    session = Session(XdsParts(reads, limits), ResourceCache(), "", "sotw", _send)
    for name in names:
        target = parse_name(name, limits)
        assert target is not None
        session.watches[name] = EndpointWatch(name, target, subscription=None)  # type: ignore[arg-type]
    return session


def test_new_grants_that_cover_every_watch_are_kept_for_later_names():
    session = session_watching("data.dc1", "web.dc1")
    narrower = Caller("mesh", parse_scopes("xds:dc1"))
    session.regrant(narrower)
    assert session.caller is narrower
    with pytest.raises(PermissionDeniedError):
        session.target("data.dc2")  # a later name is checked against the new grants


def test_new_grants_that_miss_a_watch_end_the_stream_naming_it():
    session = session_watching("data.dc1", "data.dc2")
    with pytest.raises(PermissionDeniedError) as raised:
        session.regrant(Caller("mesh", parse_scopes("xds:dc1")))
    assert str(raised.value) == (
        "xDS resource 'data.dc2': token 'mesh' lacks xds:dc2/data (its xds scopes: xds:dc1); "
        "ask only for the datacenters and types it may read"
    )


def test_new_grants_without_xds_end_a_stream_watching_nothing_yet():
    with pytest.raises(PermissionDeniedError) as raised:
        session_watching().regrant(Caller("mesh", parse_scopes("register")))
    assert str(raised.value) == "token 'mesh' lacks the 'xds' scope"
