"""The push switch's rules (who it holds back), the gray list's syntax, and the owner's view
of an operator's override: pure logic."""

from __future__ import annotations

import ipaddress

import pytest

from registry_service.control import (
    HeldScope,
    PushSwitch,
    parse_held_scope,
    parse_network,
    peer_address,
)
from registry_service.domain import Node, NodeStatus, Override, Scope, owner_view
from registry_service.errors import InvalidArgumentError


def scope(datacenters: tuple[str, ...] = (), types: tuple[str, ...] = ()) -> Scope:
    return Scope(frozenset(datacenters), frozenset(types))


def test_off_holds_everyone_and_on_without_a_gray_list_nobody():
    assert PushSwitch(enabled=False).holds(scope(), None)
    assert not PushSwitch().holds(scope(("dc1",), ("data",)), ipaddress.ip_address("10.0.0.1"))


def test_a_held_scope_holds_every_subscriber_that_can_receive_its_nodes():
    switch = PushSwitch(held_scopes=(HeldScope("dc1", "data"),))
    assert switch.holds(scope(), None)  # watches everything, dc1/data included
    assert switch.holds(scope(("dc1",)), None)
    assert switch.holds(scope(types=("data",)), None)
    assert not switch.holds(scope(("dc2",)), None)
    assert not switch.holds(scope(("dc1",), ("meta",)), None)
    any_type = PushSwitch(held_scopes=(HeldScope("dc2", ""),))
    assert any_type.holds(scope(("dc2",), ("meta",)), None)
    assert not any_type.holds(scope(("dc1",)), None)


def test_a_held_network_holds_subscribers_by_their_address():
    switch = PushSwitch(held_networks=("10.1.0.0/16", "2001:db8::/32"))
    assert switch.holds(scope(), peer_address("ipv4:10.1.2.3:41000"))
    assert not switch.holds(scope(), peer_address("ipv4:10.2.2.3:41000"))
    assert switch.holds(scope(), peer_address("ipv6:[2001:db8::7]:41000"))
    assert not switch.holds(scope(), peer_address("unix:/tmp/socket"))


def test_the_gray_list_syntax():
    assert parse_held_scope("dc1/data") == HeldScope("dc1", "data")
    assert parse_held_scope("dc1") == HeldScope("dc1", "")
    assert parse_held_scope("*/meta") == HeldScope("", "meta")
    with pytest.raises(InvalidArgumentError, match="switch pushes off"):
        parse_held_scope("*/*")
    assert parse_network("10.1.2.3/16") == "10.1.0.0/16"
    assert parse_network("10.1.2.3") == "10.1.2.3/32"
    with pytest.raises(InvalidArgumentError, match="CIDR"):
        parse_network("ten.one")


def test_an_override_outlasts_the_owners_status_and_remembers_it():
    node = Node("n1", "data", "dc1", "h:1", status=NodeStatus.DRAINING)
    assert owner_view(node, None) == (node, None)
    override = Override(NodeStatus.OUT_OF_SERVICE, NodeStatus.UP, "token:ops", 1.0)
    stored, kept = owner_view(node, override)
    assert stored.status is NodeStatus.OUT_OF_SERVICE
    assert kept == Override(NodeStatus.OUT_OF_SERVICE, NodeStatus.DRAINING, "token:ops", 1.0)


def test_a_push_switch_request_body_and_how_the_audit_names_it():
    from registry_service.web.admin_control import push_change

    off = push_change({"enabled": False})
    assert (off.enabled, off.held_scopes, off.action) == (False, None, "push.off")
    gray = push_change({"gray": {"scopes": ["dc1/data", {"datacenter": "dc2", "type": "*"}]}})
    assert gray.held_scopes == (HeldScope("dc1", "data"), HeldScope("dc2", ""))
    assert gray.held_networks == () and gray.action == "push.gray"
    both = push_change({"enabled": True, "gray": {"networks": ["10.0.0.1"]}})
    assert both.held_networks == ("10.0.0.1/32",) and both.action == "push.switch"
    for bad in (None, {}, {"on": 1}, {"enabled": "yes"}, {"gray": []}, {"gray": {"nets": []}}):
        with pytest.raises(InvalidArgumentError):
            push_change(bad)
