"""Generate the Python code for every .proto of the project (grpcio-tools + mypy-protobuf).

Usage: python tools/gen_protos.py [OUTPUT_ROOT]

Without OUTPUT_ROOT the code is written beside each .proto, where the packages import it from. The
staleness test passes a temporary root and compares the result with what is on disk; the package
build (setup.py) passes the wheel's build folder.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from grpc_tools import protoc

REPO = Path(__file__).resolve().parent.parent

# (include root, proto path relative to it): the include root decides the generated import paths.
PROTO_SETS: tuple[tuple[Path, str], ...] = (
    (REPO / "protos", "noderegistry/v1/registry.proto"),
    (REPO, "registry_service/store/_etcdpb/rpc.proto"),
)


def generated_files(out_root: Path | None = None) -> list[Path]:
    """The files that generation writes, under out_root (default: beside the protos)."""
    files = []
    for include, proto in PROTO_SETS:
        stem = (out_root or include) / proto.removesuffix(".proto")
        for suffix in ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py", "_pb2_grpc.pyi"):
            files.append(stem.with_name(stem.name + suffix))
    return files


def _plugin(name: str) -> Path:
    """A mypy-protobuf plugin: beside this Python (a venv), else on PATH (pip's build env)."""
    beside = Path(sys.executable).parent / name
    found = beside if beside.exists() else shutil.which(name)
    if found is None:
        raise SystemExit(f"{name} not found: install mypy-protobuf")
    return Path(found)


def generate(out_root: Path | None = None) -> None:
    grpc_include = Path(protoc.__file__).parent / "_proto"
    for include, proto in PROTO_SETS:
        out = out_root or include
        out.mkdir(parents=True, exist_ok=True)
        args = [
            "grpc_tools.protoc",
            f"-I{include}",
            f"-I{grpc_include}",
            f"--plugin=protoc-gen-mypy={_plugin('protoc-gen-mypy')}",
            f"--plugin=protoc-gen-mypy_grpc={_plugin('protoc-gen-mypy_grpc')}",
            f"--python_out={out}",
            f"--grpc_python_out={out}",
            f"--mypy_out={out}",
            f"--mypy_grpc_out={out}",
            str(include / proto),
        ]
        if protoc.main(args) != 0:
            raise SystemExit(f"protoc failed for {proto}")


if __name__ == "__main__":
    generate(Path(sys.argv[1]) if len(sys.argv) > 1 else None)
