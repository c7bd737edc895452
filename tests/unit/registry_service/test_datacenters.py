"""Which datacenter a registry is and which it follows: the settings parsed, and the one write
rule (federation, docs/design.md §10)."""

from __future__ import annotations

import pytest

from registry_cli.main import main
from registry_service.datacenters import Datacenters, DatacentersError, parse_remote_datacenters
from registry_service.domain import NodeKey
from registry_service.errors import WrongDatacenterError


def test_remote_datacenters_parse_into_names_and_their_frontends():
    assert parse_remote_datacenters(
        " dc2=10.0.0.1:50051, 10.0.0.2:50051 ;dc3=dns:///r.dc3:50051;"
    ) == {
        "dc2": ("10.0.0.1:50051", "10.0.0.2:50051"),
        "dc3": ("dns:///r.dc3:50051",),
    }
    assert parse_remote_datacenters("") == {}


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("dc2", "'dc2' is not NAME=host:port"),
        ("DC2=h:1", "'DC2' is not a datacenter name"),
        ("dc2=h:1;dc2=h:2", "datacenter dc2 is listed twice"),
        ("dc2=", "datacenter dc2 has no frontend address"),
        ("dc2=no-port", "dc2: 'no-port' is not host:port"),
    ],
)
def test_a_malformed_list_is_refused_saying_what_is_wrong(text, problem):
    with pytest.raises(DatacentersError, match=problem) as refused:
        parse_remote_datacenters(text)
    assert refused.value.setting == "remote_datacenters"


def test_remotes_need_a_local_datacenter_that_is_not_one_of_them():
    with pytest.raises(DatacentersError, match="needs this registry's own") as refused:
        Datacenters.from_settings("", "dc2=h:1")
    assert refused.value.setting == "datacenter"
    with pytest.raises(DatacentersError, match="own datacenter, not a remote"):
        Datacenters.from_settings("dc2", "dc2=h:1")


def test_without_a_datacenter_every_datacenter_is_writable_as_before():
    Datacenters().check_writable(NodeKey("anywhere", "data", "n1"))


def test_a_write_for_another_datacenter_names_it_and_its_frontends():
    datacenters = Datacenters.from_settings("dc1", "dc2=10.0.0.9:50051")
    datacenters.check_writable(NodeKey("dc1", "data", "n1"))
    with pytest.raises(WrongDatacenterError) as refused:
        datacenters.check_writable(NodeKey("dc2", "data", "n1"))
    assert "belongs to datacenter dc2" in str(refused.value)
    assert "10.0.0.9:50051" in str(refused.value)
    with pytest.raises(WrongDatacenterError, match="does not follow it"):
        datacenters.check_writable(NodeKey("dc7", "data", "n1"))


def test_serve_refuses_a_malformed_remote_list_in_one_line(monkeypatch, capsys):
    monkeypatch.setenv("REGISTRY_DATACENTER", "dc1")
    monkeypatch.setenv("REGISTRY_REMOTE_DATACENTERS", "dc2:10.0.0.1:50051")
    assert main(["serve"]) == 1
    err = capsys.readouterr().err
    assert err == (
        "error: 'dc2:10.0.0.1:50051' is not NAME=host:port[,host:port...]: set "
        "REGISTRY_REMOTE_DATACENTERS\n"
    )


def test_serve_refuses_remotes_without_its_own_datacenter(monkeypatch, capsys):
    monkeypatch.setenv("REGISTRY_REMOTE_DATACENTERS", "dc2=10.0.0.1:50051")
    assert main(["serve"]) == 1
    assert capsys.readouterr().err.endswith("set REGISTRY_DATACENTER\n")
