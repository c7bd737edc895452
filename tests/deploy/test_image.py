"""The container image's recipe, checked statically (no Docker engine here; checkov's Dockerfile
policies run in test_manifests.py): pinned versions, OCI labels, the container marker, LICENSE."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from noderegistry import __version__
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from registry_service.host import CONTAINER_MARKER, in_container

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = (REPO / "Dockerfile").read_text()
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())


def _pins() -> dict[str, str]:
    pins = {}
    for line in (REPO / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, sep, version = line.partition("==")
            assert sep and version, f"constraints.txt: {line!r} is not name==version"
            pins[canonicalize_name(name)] = version
    return pins


def _stages() -> list[str]:
    return ["FROM " + stage for stage in DOCKERFILE.split("\nFROM ")[1:]]


def test_every_pip_install_of_the_image_is_constrained():
    for stage in _stages():
        assert "pip install" in stage
        assert re.search(r"COPY constraints\.txt", stage)
        for line in stage.splitlines():
            if "pip install" in line:
                assert "--constraint" in line, line
            if "pip wheel" in line:  # builds with what the stage installed, constrained, above
                assert "--no-build-isolation" in line and "--no-deps" in line, line


def test_constraints_pin_every_dependency_the_image_installs_or_builds_with():
    project = PYPROJECT["project"]
    needed = [
        *project["dependencies"],
        *project["optional-dependencies"]["server"],
        *PYPROJECT["build-system"]["requires"],
    ]
    pins = _pins()
    for text in needed:
        requirement = Requirement(text)
        name = canonicalize_name(requirement.name)
        assert name in pins, f"constraints.txt lacks {name}: run tools/freeze_constraints.py"
        assert requirement.specifier.contains(pins[name]), f"{name}=={pins[name]} vs {text}"


def test_the_image_installs_the_server_extra_and_says_it_is_a_container():
    runtime = _stages()[-1]
    assert '/wheels/*.whl)[server]"' in runtime
    (marker,) = re.findall(rf"^ENV {CONTAINER_MARKER}=(\S+)$", runtime, re.MULTILINE)
    assert in_container({CONTAINER_MARKER: marker})


def test_the_image_carries_oci_labels_that_match_the_package():
    labels = dict(re.findall(r'(org\.opencontainers\.image\.[a-z]+)="([^"]*)"', DOCKERFILE))
    assert labels["org.opencontainers.image.title"] == PYPROJECT["project"]["name"]
    assert labels["org.opencontainers.image.description"] == PYPROJECT["project"]["description"]
    assert labels["org.opencontainers.image.version"] == __version__
    assert labels["org.opencontainers.image.licenses"] == PYPROJECT["project"]["license"]
    assert labels["org.opencontainers.image.revision"] == "${REVISION}"
    assert labels["org.opencontainers.image.created"] == "${CREATED}"


def test_the_license_file_is_the_apache_license_pyproject_names():
    assert PYPROJECT["project"]["license"] == "Apache-2.0"
    text = (REPO / "LICENSE").read_text()
    assert text.split()[:4] == ["Apache", "License", "Version", "2.0,"]
    assert "END OF TERMS AND CONDITIONS" in text
