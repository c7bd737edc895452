"""The sidecar's --check URLs (pure): what each names, and clear refusals."""

from __future__ import annotations

import pytest

from registry_cli.sidecar import CheckUrlError, local_checks, parse_check_url
from registry_service.domain import CheckKind


@pytest.mark.parametrize(
    ("url", "parsed"),
    [
        ("grpc://127.0.0.1:9600", (CheckKind.GRPC, "127.0.0.1:9600", "")),
        ("grpc://localhost:9600/pkg.Service", (CheckKind.GRPC, "localhost:9600", "pkg.Service")),
        ("http://127.0.0.1:8080", (CheckKind.HTTP, "127.0.0.1:8080", "/")),
        ("http://127.0.0.1:8080/ready?full=1", (CheckKind.HTTP, "127.0.0.1:8080", "/ready?full=1")),
        ("tcp://[::1]:5432", (CheckKind.TCP, "[::1]:5432", "")),
    ],
)
def test_check_urls_name_the_kind_the_target_and_what_to_ask(url, parsed):
    assert parse_check_url(url) == parsed


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("https://127.0.0.1:443/", "a check is grpc://host:port[/service]"),
        ("grpc://127.0.0.1", "give the host and the port"),
        ("tcp://127.0.0.1:5432/db", "a TCP check takes no path"),
        ("grpc://127.0.0.1:1/x?y=1", "takes a service name, not a query"),
    ],
)
def test_a_url_that_is_not_a_check_is_refused_saying_why(url, message):
    with pytest.raises(CheckUrlError) as refused:
        parse_check_url(url)
    assert message in str(refused.value)


def test_local_checks_take_the_options_thresholds():
    (check,) = local_checks(
        ["http://127.0.0.1:8080/healthz"],
        interval_seconds=3,
        timeout_seconds=1,
        failures=4,
        passes=1,
    )
    assert (check.target, check.check.path, check.check.interval_seconds) == (
        "127.0.0.1:8080",
        "/healthz",
        3,
    )
    assert (check.check.failures_before_failing, check.check.passes_before_passing) == (4, 1)
