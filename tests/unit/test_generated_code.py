"""The generated gRPC code on disk is what the .proto files produce now: never stale or edited."""

from __future__ import annotations

import importlib.util
import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.version import Version

REPO = Path(__file__).resolve().parents[2]


def _generator():
    spec = importlib.util.spec_from_file_location("gen_protos", REPO / "tools" / "gen_protos.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generated_code_matches_the_protos(tmp_path):
    gen = _generator()
    gen.generate(tmp_path)
    for fresh, on_disk in zip(gen.generated_files(tmp_path), gen.generated_files(), strict=True):
        assert on_disk.read_text() == fresh.read_text(), (
            f"{on_disk.relative_to(REPO)} is stale: run `make proto`"
        )


def _requirements() -> dict[str, list[Requirement]]:
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    groups = {
        "build": pyproject["build-system"]["requires"],
        "runtime": pyproject["project"]["dependencies"],
        "dev": pyproject["project"]["optional-dependencies"]["dev"],
    }
    return {group: [Requirement(text) for text in texts] for group, texts in groups.items()}


def _lowest_allowed(requirement: Requirement) -> Version:
    (lower,) = [spec for spec in requirement.specifier if spec.operator in (">=", "==")]
    return Version(lower.version)


def test_the_package_build_and_make_proto_run_the_same_pinned_generators():
    groups = _requirements()
    build = {r.name: str(r.specifier) for r in groups["build"] if r.name != "setuptools"}
    dev = {r.name: str(r.specifier) for r in groups["dev"] if r.name in build}
    assert set(build) == {"grpcio-tools", "mypy-protobuf"}
    assert dev == build, "the dev extra and build-system.requires pin different generators"
    assert all(spec.startswith("==") for spec in build.values()), build


def test_the_runtime_requirements_admit_no_grpcio_or_protobuf_older_than_the_generated_code():
    grpc_code = (REPO / "protos/noderegistry/v1/registry_pb2_grpc.py").read_text()
    (grpc_generated,) = re.findall(r"GRPC_GENERATED_VERSION = '([\d.]+)'", grpc_code)
    pb_code = (REPO / "protos/noderegistry/v1/registry_pb2.py").read_text()
    (pb_generated,) = re.findall(r"# Protobuf Python Version: ([\d.]+)", pb_code)
    runtime = {r.name: r for r in _requirements()["runtime"]}
    assert _lowest_allowed(runtime["grpcio"]) >= Version(grpc_generated)
    assert _lowest_allowed(runtime["protobuf"]) >= Version(pb_generated)
    next_major = f"{Version(pb_generated).major + 1}.0"
    assert not runtime["protobuf"].specifier.contains(next_major), "gencode is per major version"
