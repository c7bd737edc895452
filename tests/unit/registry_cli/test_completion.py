"""`noderegistry completion`: scripts generated from the parser, and bash completes with them."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from registry_cli.main import main

REPO = Path(__file__).resolve().parents[3]


def completion_script(capsys: pytest.CaptureFixture[str], shell: str) -> str:
    assert main(["completion", shell]) == 0
    return capsys.readouterr().out


def bash_completes(script: str, *words: str) -> list[str]:
    """What bash offers for the last of `words`, with the script loaded."""
    line = " ".join(words)
    program = (
        f"{script}\n"
        f"COMP_WORDS=({' '.join(repr(w) for w in words)}); COMP_CWORD={len(words) - 1}\n"
        f"COMP_LINE={line!r}; COMP_POINT={len(line)}\n"
        "_shtab_noderegistry; printf '%s\\n' \"${COMPREPLY[@]}\"\n"
    )
    done = subprocess.run(
        ["bash", "--norc", "-c", program], capture_output=True, text=True, check=True, timeout=30
    )
    return done.stdout.split()


def test_bash_completes_verbs_options_choices_and_file_names(capsys, tmp_path):
    script = completion_script(capsys, "bash")
    assert bash_completes(script, "noderegistry", "") == [
        "serve",
        "register",
        "deregister",
        "nodes",
        "watch",
        "health",
        "admin",
        "completion",
    ]
    assert bash_completes(script, "noderegistry", "admin", "push", "") == [
        "show",
        "on",
        "off",
        "gray",
    ]
    assert bash_completes(script, "noderegistry", "admin", "node", "--adm") == ["--admin-endpoints"]
    assert bash_completes(script, "noderegistry", "nodes", "--tok") == ["--token", "--token-file"]
    assert bash_completes(script, "noderegistry", "watch", "-o", "") == ["table", "json"]
    (tmp_path / "ca.pem").write_text("x")
    assert bash_completes(script, "noderegistry", "health", "--cacert", f"{tmp_path}/c") == [
        f"{tmp_path}/ca.pem"
    ]


def test_zsh_gets_a_compdef_script_with_every_verb(capsys):
    script = completion_script(capsys, "zsh")
    assert script.startswith("#compdef noderegistry")
    for verb in ("serve", "register", "deregister", "nodes", "watch", "health", "admin"):
        assert verb in script


def test_without_shtab_completion_says_which_extra_in_one_line(capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "shtab", None)  # as if not installed
    assert main(["completion", "bash"]) == 1
    assert capsys.readouterr().err == (
        "error: completion needs shtab: pip install 'node-registry[cli]'\n"
    )


def fish_completes(script: str, line: str) -> list[str]:
    """What fish offers for `line`, with the script loaded (fish's own `complete -C`)."""
    fish = shutil.which("fish")
    if fish is None:
        pytest.fail(
            "fish is not installed, so its completion cannot be tested in fish: install "
            "Debian's package (as root: apt-get install fish; `make test` does it as root "
            "through `make system-shells`)"
        )
    done = subprocess.run(
        [fish, "--no-config", "-c", f"source -; complete -C {shlex.quote(line)}"],
        input=script,
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    assert done.stderr == "", done.stderr
    return [candidate.split("\t")[0] for candidate in done.stdout.splitlines()]


def test_fish_completes_verbs_options_choices_and_file_names(capsys, tmp_path):
    script = completion_script(capsys, "fish")
    assert fish_completes(script, "noderegistry ") == sorted(
        ["serve", "register", "deregister", "nodes", "watch", "health", "admin", "completion"]
    )
    assert fish_completes(script, "noderegistry admin push ") == ["gray", "off", "on", "show"]
    assert fish_completes(script, "noderegistry admin node --adm") == ["--admin-endpoints"]
    # Options before the verb count: the path is still `nodes`.
    assert fish_completes(script, "noderegistry --endpoints a:1 nodes --tok") == [
        "--token",
        "--token-file",
    ]
    assert fish_completes(script, "noderegistry watch -o ") == ["json", "table"]
    (tmp_path / "ca.pem").write_text("x")
    assert fish_completes(script, f"noderegistry health --cacert {tmp_path}/c") == [
        f"{tmp_path}/ca.pem"
    ]


def test_completion_needs_nothing_beyond_what_make_run_installs():
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    serving = {requirement.split(">")[0].split("=")[0] for requirement in extras["server"]}
    assert "shtab" in serving  # bash, zsh and tcsh scripts; fish's needs nothing
