"""Writes constraints.txt: the exact versions, as installed in this venv, of every package the
container image installs (the server's runtime dependencies, transitively) and builds with (the
build-system requirements). The Dockerfile installs with `--constraint constraints.txt`, so the
image runs what `make test` ran here.

Usage: .venv/bin/python tools/freeze_constraints.py   (after `make setup`)
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parent.parent
HEADER = """\
# Exact versions for the container image (Dockerfile): the server's runtime dependencies and the
# build's requirements, as installed by `make setup` and tested by `make test`.
# Written by tools/freeze_constraints.py; rerun it after changing a dependency.
"""


def image_requirements() -> list[str]:
    """What the image needs: the package's own and `server` dependencies, and the build's."""
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    project = pyproject["project"]
    return [
        *project["dependencies"],
        *project["optional-dependencies"]["server"],
        *pyproject["build-system"]["requires"],
    ]


def installed_closure(requirements: Iterable[str]) -> dict[str, str]:
    """{name: installed version} of the requirements and everything they require, here."""
    pins: dict[str, str] = {}
    seen: set[tuple[str, frozenset[str]]] = set()
    queue = [Requirement(text) for text in requirements]
    while queue:
        requirement = queue.pop()
        name = canonicalize_name(requirement.name)
        if (name, frozenset(requirement.extras)) in seen:
            continue
        seen.add((name, frozenset(requirement.extras)))
        distribution = metadata.distribution(name)
        pins[name] = distribution.version
        for text in distribution.requires or ():
            dependency = Requirement(text)
            extras = requirement.extras or {""}
            if dependency.marker is None or any(
                dependency.marker.evaluate({"extra": extra}) for extra in extras
            ):
                queue.append(dependency)
    return pins


def constraints_text() -> str:
    pins = installed_closure(image_requirements())
    return HEADER + "".join(f"{name}=={pins[name]}\n" for name in sorted(pins))


if __name__ == "__main__":
    (REPO / "constraints.txt").write_text(constraints_text())
