"""`make run` installs only what serving needs (issue 11, problem 9: it used to install the dev
tools, a 269 MB venv): read from what make would run in a fresh checkout, and from pyproject."""

from __future__ import annotations

import os
import re
import subprocess
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[; ]", requirement, maxsplit=1)[0].lower()


def test_make_run_installs_the_server_and_etcd_extras_and_nothing_else(tmp_path):
    venv = tmp_path / "venv"  # does not exist: make plans the whole setup
    # Not as a sub-make of `make test`: its flags would come along and change what is printed.
    environment = {
        k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS")
    }
    planned = subprocess.run(
        ["make", "--dry-run", "--no-print-directory", "run", f"VENV={venv}"],
        cwd=REPO,
        env=environment,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    installs = [line for line in planned if " -m pip install " in line]
    assert installs == [
        f"{venv}/bin/python -m pip install --quiet --upgrade pip",
        f"{venv}/bin/python -m pip install --quiet -e '.[server,etcd]'",
    ]
    assert planned[-1] == f"{venv}/bin/noderegistry serve"
    # It says how to turn shell completion on (the completion needs nothing more: D121).
    assert f"source <({venv}/bin/noderegistry completion bash)" in planned[-2]


def test_the_extras_make_run_installs_carry_no_dev_tool():
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    serving = {_name(r) for r in extras["server"] + extras["etcd"]}
    assert serving.isdisjoint(_name(r) for r in extras["dev"]), serving
