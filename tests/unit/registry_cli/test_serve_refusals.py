"""`noderegistry serve` refuses bad settings with one `error:` line and exit status 1."""

from __future__ import annotations

import pytest

from registry_cli.main import main


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        (
            "REGISTRY_ETCD_ENDPOINT",
            "10.0.0.1:2379",
            "error: unknown setting REGISTRY_ETCD_ENDPOINT (did you mean REGISTRY_ETCD_ENDPOINTS?)",
        ),
        (
            "REGISTRY_EVICTOR_DRY_RUN",
            "ture",
            "error: REGISTRY_EVICTOR_DRY_RUN: 'ture' is not a boolean",
        ),
        ("REGISTRY_ADMIN_TOKEN_FILE", "/nonexistent/token", "error: REGISTRY_ADMIN_TOKEN_FILE:"),
    ],
)
def test_serve_refuses_a_bad_setting_in_one_line(monkeypatch, capsys, variable, value, message):
    monkeypatch.setenv(variable, value)
    assert main(["serve"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(message)
    assert err.count("\n") == 1


def test_serve_refuses_a_malformed_flag_in_one_line(capsys):
    assert main(["serve", "--evictor-dry-run", "maybe"]) == 1
    err = capsys.readouterr().err
    assert err == (
        "error: --evictor-dry-run: 'maybe' is not a boolean: use true/false/1/0/yes/no\n"
    )
