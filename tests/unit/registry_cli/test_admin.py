"""The `admin` verbs without a network: where they send, what is a usage error, what they print."""

from __future__ import annotations

import io
import urllib.error
from http import HTTPStatus

import pytest

from client_sdk import StatusCode
from registry_cli import admin_http, admin_output
from registry_cli.admin_http import base_url
from registry_cli.main import build_parser, main
from registry_cli.options import DEFAULT_ADMIN_ENDPOINTS, resolve


def resolved(*args: str, env: dict[str, str] | None = None):
    return resolve(build_parser().parse_args(["admin", *args]), env or {})


def test_admin_endpoints_come_from_the_flag_else_the_variable_else_the_default():
    assert resolved("frontends").admin_endpoints == (DEFAULT_ADMIN_ENDPOINTS,)
    env = {"NODEREGISTRY_ADMIN_ENDPOINTS": "a:9090,b:9090"}
    assert resolved("frontends", env=env).admin_endpoints == ("a:9090", "b:9090")
    flagged = resolved("frontends", "--admin-endpoints", "c:1", env=env)
    assert flagged.admin_endpoints == ("c:1",)


def test_an_admin_endpoint_is_https_when_tls_is_on_and_a_url_stays_as_given():
    assert base_url("h:9090", tls=False) == "http://h:9090"
    assert base_url("h:9090", tls=True) == "https://h:9090"
    assert base_url("http://h:9090/", tls=True) == "http://h:9090"


def test_admin_verbs_take_the_admin_endpoints_not_the_grpc_ones():
    with pytest.raises(Exception, match="endpoints"):
        build_parser().parse_args(["admin", "frontends", "--endpoints", "a:1"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("node", "evict", "dc1/data"), "a node is DC/TYPE/ID, not 'dc1/data'"),
        (("node", "drain", "dc1/data/n1", "--hold", "5"), "--hold goes with `admin node evict`"),
        (("push", "gray"), "admin push gray: give --scope and/or --network, or --clear"),
        (("push", "off", "--scope", "dc1/data"), "--scope, --network and --clear go with"),
        (("push", "gray", "--clear", "--network", "10.0.0.0/8"), "--clear or --scope/--network"),
        (("suspects", "confirm"), "give NODE... or --datacenter, one of them"),
        (("suspects", "list", "--datacenter", "dc1"), "go with confirm or cancel"),
        (("node", "evict", "dc1/data/n1", "--hold", "-1"), "must be a number of seconds >= 0"),
    ],
)
def test_a_bad_admin_command_is_one_usage_line_and_exit_2(capsys, args, message):
    # Nothing listens there: the command is refused before that would be found out.
    assert main(["admin", *args, "--admin-endpoints", "127.0.0.1:1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1


def test_no_answering_admin_endpoint_is_one_line_naming_the_variable(capsys):
    assert main(["admin", "frontends", "--admin-endpoints", "127.0.0.1:1", "--timeout", "2"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: UNAVAILABLE: no admin endpoint answered (http://127.0.0.1:1:")
    assert "NODEREGISTRY_ADMIN_ENDPOINTS" in err and err.count("\n") == 1


def test_the_push_line_says_what_is_held_and_who_changed_it():
    doc = {
        "enabled": True,
        "gray": {"scopes": ["dc1/data"], "networks": ["10.1.0.0/16"]},
        "changed_by": "token:ops",
        "changed_at": 0.0,
        "revision": 9,
    }
    assert admin_output.push(doc) == (
        "pushes ON; gray list holds back dc1/data, 10.1.0.0/16; changed by token:ops at - "
        "(revision 9)"
    )


def subscriber(converged: bool, **fields) -> dict:
    return {
        "frontend": "fe-1",
        "peer": "ipv4:10.0.0.1:5",
        "scope": {"datacenters": [], "types": ["data"]},
        "sent_revision": 12,
        "acked_revision": 12 if converged else 9,
        "acknowledging": True,
        "converged": converged,
        "pending_since": None,
        "held": False,
        **fields,
    }


def test_convergence_lists_who_owes_what_and_who_did_not_answer():
    doc = {
        "revision": 12,
        "frontends": ["fe-1"],
        "subscribers": [subscriber(True), subscriber(False, peer="ipv4:10.0.0.2:5")],
        "not_converged": 1,
        "oldest_pending_seconds": 4.25,
        "unreachable": [{"frontend": "fe-2", "admin_url": "http://b:9090", "error": "timeout"}],
    }
    lines = admin_output.subscribers(doc, pending_only=True).splitlines()
    assert lines[0].split() == [
        "FRONTEND", "WORKER", "PEER", "SCOPE", "SENT", "ACKED", "CONVERGED", "OWED", "PUSH"
    ]  # fmt: skip
    assert len(lines) == 5 and "10.0.0.2" in lines[1]
    assert lines[2] == (
        "1 of 2 subscriber(s) have not acknowledged revision 12; the oldest owes it for 4.2s"
    )
    assert lines[4] == "UNREACHABLE fe-2 at http://b:9090: timeout"


@pytest.mark.parametrize(
    ("body", "status", "code", "message"),
    [
        (
            b'{"error": {"code": "ABORTED", "message": "node changed; retry"}}',
            409,
            "ABORTED",
            "node changed; retry",
        ),
        (
            b'{"error": "not a SUSPECT"}',
            409,
            "FAILED_PRECONDITION",
            "not a SUSPECT",
        ),  # older frontends
        (b"<html>proxy</html>", 503, "UNAVAILABLE", "Service Unavailable"),
    ],
)
def test_an_admin_refusal_is_the_sdk_error_of_its_code_with_its_message(
    body, status, code, message
):
    err = urllib.error.HTTPError(
        "http://a:9090/x", status, HTTPStatus(status).phrase, {}, io.BytesIO(body)
    )
    refusal = admin_http._refusal(err, "http://a:9090")
    assert refusal.code is StatusCode[code]
    assert str(refusal) == f"{code}: {message} (admin http://a:9090, HTTP {status})"
