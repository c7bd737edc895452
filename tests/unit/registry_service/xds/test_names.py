"""xDS resource names: type, datacenter, selector; anything else names nothing."""

from __future__ import annotations

import pytest

from registry_service.domain import Limits
from registry_service.selectors import parse_selector
from registry_service.xds.names import parse_name

LIMITS = Limits()


@pytest.mark.parametrize(
    ("name", "datacenters", "selector"),
    [
        ("data", set(), ""),
        ("data.dc1", {"dc1"}, ""),
        ("data/zone=a,!canary", set(), "zone=a,!canary"),
        ("data.dc1/version in (2,3)", {"dc1"}, "version in (2,3)"),
        ("data.dc1/version%20in%20(2,3)", {"dc1"}, "version in (2,3)"),  # as grpc-js sends it
        ("data/app.kubernetes.io/name=web", set(), "app.kubernetes.io/name=web"),
    ],
)
def test_a_name_is_a_type_a_datacenter_and_a_selector(name, datacenters, selector):
    target = parse_name(name, LIMITS)
    assert target is not None
    assert target.scope.types == {"data"}
    assert target.scope.datacenters == datacenters
    assert target.scope.selector == parse_selector(selector)


@pytest.mark.parametrize(
    "name",
    [
        "",
        "Data",
        "data.",
        "data.DC1",
        "data.dc1.dc2",
        "data/",
        "data/zone=(",
        "data/%ff",
        "data?zone=a",
        "*",
        "xdstp://x/envoy.config.listener.v3.Listener/data",
        "d" * 40,
        "data/" + "a=b," * 400 + "a=b",
    ],
)
def test_anything_else_names_nothing(name):
    assert parse_name(name, LIMITS) is None
