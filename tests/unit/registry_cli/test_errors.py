"""The CLI fails in one `error:` line: exit 2 for a bad command line, 1 for a refusal."""

from __future__ import annotations

import pytest

from client_sdk import (
    InvalidArgumentError,
    RegistryUnavailableError,
    StatusCode,
    UnauthenticatedError,
    WatchClosedError,
)
from registry_cli.errors import error_line
from registry_cli.main import main

REGISTER = ["register", "--id", "n", "--type", "t", "--datacenter", "d", "--address", "h:1"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "error: noderegistry: the following arguments are required: COMMAND"),
        (["nodez"], "error: noderegistry: argument COMMAND: invalid choice: 'nodez'"),
        (["nodes", "-o", "yaml"], "error: noderegistry nodes: argument -o/--output: invalid"),
        (["nodes", "--bogus"], "error: noderegistry: unrecognized arguments: --bogus"),
        (
            [*REGISTER, "--ttl", "-1"],
            "error: noderegistry register: argument --ttl: must be a whole number of seconds, "
            "0 (the registry's default) or more, not '-1' (see 'noderegistry register --help')",
        ),
        (["register", "--id", "n"], "error: noderegistry register: the following arguments"),
        (["nodes", "--timeout", "0"], "error: --timeout: '0' is not a number of seconds > 0"),
        (["--log-level", "loud", "nodes"], "error: noderegistry: argument --log-level: invalid"),
    ],
)
def test_a_usage_error_is_one_line_and_exit_2(capsys, argv, message):
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith(message)
    assert captured.err.count("\n") == 1


def test_an_sdk_error_is_one_line_with_a_hint_where_one_helps():
    multi_line = RegistryUnavailableError(
        StatusCode.UNAVAILABLE, "no registry frontend answered (a:1): failed to connect\n  reason"
    )
    assert error_line(multi_line) == (
        "error: UNAVAILABLE: no registry frontend answered (a:1): failed to connect reason "
        "(check --endpoints or NODEREGISTRY_ENDPOINTS, or retry)"
    )
    assert error_line(UnauthenticatedError(StatusCode.UNAUTHENTICATED, "token required")) == (
        "error: UNAUTHENTICATED: token required "
        "(give a token with --token-file, --token or NODEREGISTRY_TOKEN)"
    )
    late = RegistryUnavailableError(StatusCode.DEADLINE_EXCEEDED, "no answer within 5s")
    assert error_line(late).endswith("(--timeout or NODEREGISTRY_TIMEOUT waits longer)")
    refused = InvalidArgumentError(StatusCode.INVALID_ARGUMENT, "id 'X' must match ...")
    assert error_line(refused) == "error: INVALID_ARGUMENT: id 'X' must match ..."
    assert error_line(WatchClosedError("the watch was closed")) == "error: the watch was closed"
