"""The generated gRPC code on disk is what the .proto files produce now: never stale or edited."""

from __future__ import annotations

import importlib.util
from pathlib import Path

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
