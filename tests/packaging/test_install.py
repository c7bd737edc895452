"""The package as a user gets it: a wheel and an sdist built from a clean copy of the repository,
each installed into a fresh venv and used from there, away from the source tree.

Plan:
1. Copy what git tracks (no generated code: it is git-ignored) and build the sdist, then the wheel
   from the sdist, with `python -m build` (isolated build environments, as any user gets).
2. The wheel, without extras, into venv `sdk`: the SDK and the CLI's client verbs, and nothing of
   the server's dependencies.
3. The sdist with the `server` extra into venv `server` (pip builds it once more, from the sdist).
4. A frontend started from venv `server` on the test etcd; a script in venv `sdk` registers a node,
   watches it arrive, deregisters it and watches it leave.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tarfile
import textwrap
import urllib.request
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from noderegistry import __version__

from registry_service.process.embedded_etcd import EtcdServer

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

REPO = Path(__file__).resolve().parents[2]
GENERATED = re.compile(r"_pb2(_grpc)?\.pyi?$")
SERVER_ONLY = ("aiohttp", "prometheus-client", "grpcio-health-checking", "grpcio-reflection")


def _environment() -> dict[str, str]:
    """Nothing of this checkout leaks into the venvs: no PYTHONPATH, no active venv, no settings."""
    return {
        name: value
        for name, value in os.environ.items()
        if name not in ("PYTHONPATH", "VIRTUAL_ENV") and not name.startswith("REGISTRY_")
    }


def run(*args: str | Path, cwd: Path | None = None, timeout: float = 600) -> str:
    done = subprocess.run(
        [str(arg) for arg in args],
        cwd=cwd,
        env=_environment(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, f"{args} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def fresh_venv(path: Path, requirement: str) -> Path:
    """A venv without pip, filled by this pip (`--python`): seconds instead of a pip install."""
    run(sys.executable, "-m", "venv", "--without-pip", path)
    python = path / "bin" / "python"
    run(sys.executable, "-m", "pip", "--python", python, "install", "--quiet", requirement)
    return path


@dataclass(frozen=True)
class Artifacts:
    wheel: Path
    sdist: Path
    work: Path


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Artifacts:
    work = tmp_path_factory.mktemp("packaging")
    source = work / "source"
    listed = run(
        "git", "ls-files", "-z", "--cached", "--others", "--exclude-standard", cwd=REPO
    ).split("\0")
    for name in filter(None, listed):
        if (REPO / name).is_file():  # a file deleted in the worktree is still in the index
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, source / name)
    assert not [p for p in source.rglob("*") if GENERATED.search(p.name)], "generated code copied"
    dist = work / "dist"
    run(sys.executable, "-m", "build", "--outdir", dist, source)
    (wheel,) = dist.glob("*.whl")
    (sdist,) = dist.glob("*.tar.gz")
    return Artifacts(wheel, sdist, work)


def sdist_names(sdist: Path) -> list[str]:
    with tarfile.open(sdist) as archive:
        return archive.getnames()


@pytest.fixture(scope="module")
def sdk_venv(artifacts: Artifacts) -> Path:
    return fresh_venv(artifacts.work / "sdk", str(artifacts.wheel))


@pytest.fixture(scope="module")
def server_venv(artifacts: Artifacts) -> Path:
    return fresh_venv(artifacts.work / "server", f"{artifacts.sdist}[server]")


def test_the_wheel_carries_generated_code_and_the_sdist_only_its_sources(artifacts):
    with zipfile.ZipFile(artifacts.wheel) as wheel:
        wheel_files = wheel.namelist()
    for module in (
        "noderegistry/v1/registry_pb2.py",
        "noderegistry/v1/registry_pb2_grpc.py",
        "noderegistry/v1/registry_pb2.pyi",
        "registry_service/store/_etcdpb/rpc_pb2.py",
        "registry_service/store/_etcdpb/rpc_pb2_grpc.py",
    ):
        assert module in wheel_files
    assert any(name.endswith("licenses/LICENSE") for name in wheel_files)
    sdist_files = sdist_names(artifacts.sdist)
    assert not [name for name in sdist_files if GENERATED.search(name)]
    root = f"node_registry-{__version__}"
    for source in ("setup.py", "tools/gen_protos.py", "protos/noderegistry/v1/registry.proto"):
        assert f"{root}/{source}" in sdist_files


def test_the_sdk_installs_without_the_servers_dependencies(sdk_venv):
    python = sdk_venv / "bin" / "python"
    installed = run(sys.executable, "-m", "pip", "--python", python, "list", "--format=freeze")
    names = {line.split("==")[0].lower() for line in installed.splitlines()}
    assert {"grpcio", "protobuf", "node-registry"} <= names
    assert not names & {*SERVER_ONLY, "shtab"}, names
    probe = textwrap.dedent(
        """
        import importlib.util, client_sdk
        from client_sdk import Node, RegistryClient
        print(client_sdk.__version__)
        print(client_sdk.__file__)
        print([m for m in ("aiohttp", "prometheus_client") if importlib.util.find_spec(m)])
        """
    )
    version, location, server_modules = run(python, "-c", probe, cwd=sdk_venv).splitlines()
    assert version == __version__
    assert location.startswith(str(sdk_venv)), location
    assert server_modules == "[]"
    cli_version = run(sdk_venv / "bin" / "noderegistry", "--version")
    assert cli_version.strip() == f"noderegistry {__version__}"


def run_installed_cli(venv: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The venv's `noderegistry`, to its end, whatever its exit status."""
    return subprocess.run(
        [venv / "bin" / "noderegistry", *args],
        cwd=cwd,
        env=_environment(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_serve_without_the_server_extra_says_which_extra_in_one_line(sdk_venv, tmp_path):
    done = run_installed_cli(sdk_venv, "serve", "--etcd-endpoints", "127.0.0.1:1", cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr.startswith("error: serve needs ")
    assert "pip install 'node-registry[server]'" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_the_cli_verbs_of_the_cli_extra_say_which_extra_in_one_line(sdk_venv, tmp_path):
    for args, module in (
        (("completion", "bash"), "shtab"),
        (("health",), "grpcio-health-checking"),
    ):
        done = run_installed_cli(sdk_venv, *args, cwd=tmp_path)
        verb = args[0]
        assert (done.returncode, done.stdout) == (1, "")
        assert done.stderr == f"error: {verb} needs {module}: pip install 'node-registry[cli]'\n"
    # The sidecar's checks (register --check) need grpc's health stubs too; nothing is sent.
    sidecar = ("--id", "s1", "--type", "web", "--datacenter", "dc1", "--address", "10.0.0.1:80")
    done = run_installed_cli(
        sdk_venv, "register", *sidecar, "--check", "tcp://127.0.0.1:1", cwd=tmp_path
    )
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == (
        "error: register --check needs grpcio-health-checking: pip install 'node-registry[cli]'\n"
    )


@pytest.fixture
def installed_frontend(server_venv: Path, etcd: EtcdServer, tmp_path: Path) -> Iterator[str]:
    """The installed server's ready line (its gRPC address, its HTTP API's and admin URLs)."""
    log_path = tmp_path / "frontend.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [
                server_venv / "bin" / "noderegistry",
                "serve",
                "--listen=127.0.0.1:0",
                "--admin-listen=127.0.0.1:0",
                "--http-listen=127.0.0.1:0",
                "--workers=1",
                f"--etcd-endpoints={etcd.endpoint}",
                f"--cluster=pkg-{secrets.token_hex(4)}",
            ],
            cwd=tmp_path,
            env=_environment(),
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
        )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()  # the ready line; EOF if it died
        assert "serving on " in line, f"no ready line: {line!r}; log:\n{log_path.read_text()}"
        yield line
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        process.stdout.close()


CLIENT = textwrap.dedent(
    """
    import asyncio, sys
    from client_sdk import EventType, Node, RegistryClient, Scope

    async def main(target):
        async with RegistryClient(target) as client:
            watch = await client.watch_nodes(Scope.of(types="pkg"))
            events = watch.events()
            registration = await client.register(Node("pkg-1", "pkg", "dc1", "10.0.0.1:7000"))
            async with asyncio.timeout(30):
                async for event in events:
                    print(event.type.value, event.node.id, flush=True)
                    if event.type is EventType.ADDED:
                        break
            await registration.close()
            async with asyncio.timeout(30):
                async for event in events:
                    print(event.type.value, event.node.id, event.reason.value, flush=True)
                    if event.type is EventType.REMOVED:
                        break
            await watch.close()

    asyncio.run(main(sys.argv[1]))
    """
)


def test_the_installed_sdk_registers_and_watches_through_the_installed_server(
    installed_frontend, server_venv, sdk_venv, tmp_path
):
    where = "import registry_service; print(registry_service.__file__)"
    located = run(server_venv / "bin" / "python", "-c", where, cwd=tmp_path)
    assert located.startswith(str(server_venv)), located
    script = tmp_path / "client.py"
    script.write_text(CLIENT)
    target = re.search(r"serving on (\S+)", installed_frontend).group(1)
    out = run(sdk_venv / "bin" / "python", script, target, cwd=tmp_path, timeout=90)
    assert out.splitlines() == ["ADDED pkg-1", "REMOVED pkg-1 DEREGISTERED"]


def test_the_installed_server_serves_the_console_and_the_openapi_document(installed_frontend):
    # Package data: the console's files and the document come from the installed wheel.
    base = re.search(r"console (http://\S+)/ui/", installed_frontend).group(1)
    for path, kind in (
        ("/ui/", "text/html"),
        ("/ui/console.js", "text/javascript"),
        ("/ui/console.css", "text/css"),
        ("/ui/favicon.svg", "image/svg+xml"),
        ("/v1/openapi.json", "application/json"),
    ):
        with urllib.request.urlopen(base + path, timeout=10) as response:
            assert response.status == 200, path
            assert response.headers.get_content_type() == kind, path
            assert response.read(), path


def test_the_images_build_stage_copies_everything_the_sdist_holds(artifacts):
    build_stage = (REPO / "Dockerfile").read_text().split("\nFROM ")[1]
    copied = set()
    for line in build_stage.splitlines():
        if line.startswith("COPY ") and "--from" not in line:
            copied.update(part.rstrip("/") for part in line.split()[1:-1])
    root = f"node_registry-{__version__}/"
    needed = {
        name.removeprefix(root)
        for name in sdist_names(artifacts.sdist)
        if name.startswith(root) and "egg-info" not in name
    }
    needed -= {"PKG-INFO", "setup.cfg"}  # written by the sdist build itself
    missing = {
        name for name in needed if not any(name == c or name.startswith(c + "/") for c in copied)
    }
    missing -= {name for name in missing if any(c.startswith(name + "/") for c in copied)}
    assert not missing, f"the Dockerfile's build stage does not copy {sorted(missing)}"
