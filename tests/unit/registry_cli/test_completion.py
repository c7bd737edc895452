"""`noderegistry completion`: scripts generated from the parser, and bash completes with them."""

from __future__ import annotations

import subprocess
import sys

import pytest

from registry_cli.main import main


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
