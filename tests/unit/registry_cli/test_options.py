"""The CLI's shared options: a flag wins over its NODEREGISTRY_* variable, which wins over the
default; a bad value is a usage error naming where it came from."""

from __future__ import annotations

from pathlib import Path

import pytest

from registry_cli.errors import UsageError
from registry_cli.main import build_parser
from registry_cli.options import (
    DEFAULT_ENDPOINTS,
    DEFAULT_TIMEOUT_SECONDS,
    OPTIONS,
    ClientOptions,
    environment_warnings,
    resolve,
)
from tests.support.certs import write_certificates


def resolved(*flags: str, env: dict[str, str] | None = None) -> ClientOptions:
    return resolve(build_parser().parse_args(["nodes", *flags]), env or {})


@pytest.fixture
def pem(tmp_path: Path) -> dict[str, str]:
    """CA files that stand in for PEM files (resolution only checks that they can be read), and
    a client certificate with its key (resolution checks that they belong together)."""
    for name in ("ca-flag", "ca-env"):
        (tmp_path / name).write_text(name)
    _, files = write_certificates(tmp_path, ("127.0.0.1",), "client")
    return {
        "ca-flag": str(tmp_path / "ca-flag"),
        "ca-env": str(tmp_path / "ca-env"),
        "cert": files["client.pem"],
        "key": files["client-key.pem"],
        "other-key": files["server-key.pem"],
    }


def test_defaults_without_flags_or_variables():
    assert resolved() == ClientOptions(
        endpoints=(DEFAULT_ENDPOINTS,), timeout_seconds=DEFAULT_TIMEOUT_SECONDS, output="table"
    )


@pytest.mark.parametrize(
    ("flags", "variable", "value", "field", "from_flag", "from_variable"),
    [
        (
            ("--endpoints", "a:1,b:2"),
            "NODEREGISTRY_ENDPOINTS",
            "c:3",
            "endpoints",
            ("a:1", "b:2"),
            ("c:3",),
        ),
        (("--target", "a:1"), "NODEREGISTRY_ENDPOINTS", "c:3", "endpoints", ("a:1",), ("c:3",)),
        (("--timeout", "1.5"), "NODEREGISTRY_TIMEOUT", "7", "timeout_seconds", 1.5, 7.0),
        (("-o", "json"), "NODEREGISTRY_OUTPUT", "table", "output", "json", "table"),
        (("--token", "t-flag"), "NODEREGISTRY_TOKEN", "t-env", "token", "t-flag", "t-env"),
    ],
)
def test_a_flag_wins_over_its_variable_which_wins_over_the_default(
    flags, variable, value, field, from_flag, from_variable
):
    assert getattr(resolved(*flags, env={variable: value}), field) == from_flag
    assert getattr(resolved(env={variable: value}), field) == from_variable
    assert getattr(resolved(env={variable: ""}), field) == getattr(ClientOptions(), field)


def test_tls_files_from_flags_win_over_variables_and_turn_tls_on(pem):
    env = {
        "NODEREGISTRY_CACERT": pem["ca-env"],
        "NODEREGISTRY_CERT": pem["cert"],
        "NODEREGISTRY_KEY": pem["key"],
    }
    options = resolved("--cacert", pem["ca-flag"], env=env)
    assert (options.cacert, options.cert, options.key) == (pem["ca-flag"], pem["cert"], pem["key"])
    config = options.client_config()
    assert (config.tls_ca_file, config.tls_cert_file, config.tls_key_file) == (
        pem["ca-flag"],
        pem["cert"],
        pem["key"],
    )


def test_the_token_comes_from_a_flag_a_file_or_a_variable_and_a_flag_wins(tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text("from-file\n")
    assert resolved("--token-file", str(token_file)).token == "from-file"
    assert resolved(env={"NODEREGISTRY_TOKEN_FILE": str(token_file)}).token == "from-file"
    # Either flag beats either variable.
    assert resolved("--token-file", str(token_file), env={"NODEREGISTRY_TOKEN": "v"}).token == (
        "from-file"
    )
    assert resolved("--token", "f", env={"NODEREGISTRY_TOKEN_FILE": str(token_file)}).token == "f"
    assert resolved("--token", "f").client_config().bearer_token == "f"


@pytest.mark.parametrize(
    ("flags", "env", "message"),
    [
        (("--token", "a", "--token-file", "FILE"), {}, "--token and --token-file: give one"),
        (
            (),
            {"NODEREGISTRY_TOKEN": "a", "NODEREGISTRY_TOKEN_FILE": "FILE"},
            "NODEREGISTRY_TOKEN and NODEREGISTRY_TOKEN_FILE: give one, not both",
        ),
        (("--token-file", "/nonexistent/t"), {}, "--token-file: cannot read '/nonexistent/t'"),
        (("--token-file", "EMPTY"), {}, "--token-file: a token is one non-empty line"),
        (("--token", "two\nlines"), {}, "--token: a token is one non-empty line"),
        (("--timeout", "soon"), {}, "--timeout: 'soon' is not a number of seconds > 0"),
        ((), {"NODEREGISTRY_TIMEOUT": "-1"}, "NODEREGISTRY_TIMEOUT: '-1' is not a number"),
        ((), {"NODEREGISTRY_TIMEOUT": "nan"}, "NODEREGISTRY_TIMEOUT: 'nan' is not a number"),
        ((), {"NODEREGISTRY_OUTPUT": "yaml"}, "NODEREGISTRY_OUTPUT: 'yaml' is not one of"),
        (("--endpoints", " , "), {}, "--endpoints: give at least one frontend"),
        ((), {"NODEREGISTRY_CACERT": "/nonexistent/ca"}, "NODEREGISTRY_CACERT: cannot read"),
        (("--cert", "FILE"), {}, "--cert and --key go together"),
        (("--cert", "FILE", "--key", "FILE"), {}, "--cert needs --cacert"),
    ],
)
def test_a_bad_value_is_a_usage_error_naming_its_flag_or_variable(tmp_path, flags, env, message):
    (tmp_path / "file").write_text("x")
    (tmp_path / "empty").write_text("\n")
    where = {"FILE": str(tmp_path / "file"), "EMPTY": str(tmp_path / "empty")}
    flags = tuple(where.get(flag, flag) for flag in flags)
    env = {name: where.get(value, value) for name, value in env.items()}
    with pytest.raises(UsageError) as refused:
        resolved(*flags, env=env)
    assert str(refused.value).startswith(message)


def test_a_misspelled_or_renamed_variable_is_warned_about_and_others_pass():
    assert environment_warnings(
        {
            "NODEREGISTRY_ENDPOINT": "a:1",
            "NODEREGISTRY_TARGET": "a:1",
            "NODEREGISTRY_TIMEOUT": "3",  # ours
            "NODEREGISTRY_CONTAINER": "1",  # the server's
            "NODEREGISTRY_SOMETHING_ELSE": "x",  # nothing like ours: not ours to judge
            "PATH": "/bin",
        }
    ) == [
        "warning: NODEREGISTRY_ENDPOINT is not read; did you mean NODEREGISTRY_ENDPOINTS?",
        "warning: NODEREGISTRY_TARGET is not read; did you mean NODEREGISTRY_ENDPOINTS?",
    ]


def test_every_client_verb_takes_every_shared_option():
    parser = build_parser()
    for verb in ("register", "nodes", "watch", "health"):
        required = ["--id", "n", "--type", "t", "--datacenter", "d", "--address", "h:1"]
        extra = required if verb == "register" else []
        for option in OPTIONS:
            value = option.choices[-1] if option.choices else "x"
            args = parser.parse_args([verb, *extra, option.flags[0], value])
            assert getattr(args, option.dest) == value, (verb, option.flags[0])


def test_the_readme_documents_every_verb_option_and_variable():
    readme = (Path(__file__).resolve().parents[3] / "README.md").read_text()
    section = readme.split("\n## CLI\n", 1)[1].split("\n## ", 1)[0]
    commands = next(a for a in build_parser()._actions if a.dest == "command")
    for verb in commands.choices:
        assert f"| `{verb}" in section, f"README's CLI table lacks {verb}"
    for option in OPTIONS:
        row = next(
            (line for line in section.splitlines() if f"| `{option.variable}` |" in line), ""
        )
        assert row, f"README's options table lacks {option.variable}"
        for flag in option.flags:
            assert f"`{flag}" in row, f"{option.variable}: {flag}"


def test_options_may_come_before_the_verb_and_a_flag_after_it_wins():
    parser = build_parser()
    before = resolve(parser.parse_args(["--endpoints", "a:1", "-o", "json", "nodes"]), {})
    assert (before.endpoints, before.output) == (("a:1",), "json")
    both = resolve(parser.parse_args(["--endpoints", "a:1", "nodes", "--endpoints", "b:2"]), {})
    assert both.endpoints == ("b:2",)
    admin = parser.parse_args(["--admin-endpoints", "h:9", "admin", "push"])
    assert resolve(admin, {}).admin_endpoints == ("h:9",)


def test_plaintext_turns_tls_off_for_one_call_whatever_the_variables_say(pem):
    env = {
        "NODEREGISTRY_CACERT": pem["ca-env"],
        "NODEREGISTRY_CERT": pem["cert"],
        "NODEREGISTRY_KEY": pem["key"],
    }
    assert resolved(env=env).cacert == pem["ca-env"]
    options = resolved("--plaintext", env=env)
    assert (options.cacert, options.cert, options.key) == ("", "", "")
    assert options.client_config().tls_ca_file == ""
    with pytest.raises(UsageError, match="--plaintext and --cacert: give one, not both"):
        resolved("--plaintext", "--cacert", pem["ca-flag"])


def test_a_certificate_and_a_key_that_do_not_belong_together_are_refused(pem):
    with pytest.raises(UsageError) as refused:
        resolved("--cacert", pem["ca-flag"], "--cert", pem["cert"], "--key", pem["other-key"])
    assert "are not a PEM certificate and its unencrypted key (key values mismatch)" in str(
        refused.value
    )
