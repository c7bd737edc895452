"""The package build generates the gRPC code, so a wheel, an sdist and `pip install .` all carry it.

Everything else about the package is in pyproject.toml. The code comes from tools/gen_protos.py
(the same generator as `make proto`), run by `build_py`: into the wheel's tree, or, for an editable
install, beside the .proto files, where an editable install imports from (decision D31).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent


def _generator() -> ModuleType:
    # Loaded when the command runs, not at import: metadata builds run this file without grpc_tools.
    spec = importlib.util.spec_from_file_location("gen_protos", ROOT / "tools" / "gen_protos.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class BuildPyWithGeneratedCode(build_py):
    """`build_py` that also writes the *_pb2*.py(i) modules generated from the .proto files."""

    def run(self) -> None:
        super().run()
        generator = _generator()
        if self.editable_mode:
            generator.generate()
        else:
            generator.generate(Path(self.build_lib))

    def get_outputs(self, include_bytecode: bool = True) -> list[str]:
        outputs = list(super().get_outputs(include_bytecode))
        if not self.editable_mode:
            outputs += [str(path) for path in _generator().generated_files(Path(self.build_lib))]
        return outputs


setup(cmdclass={"build_py": BuildPyWithGeneratedCode})
