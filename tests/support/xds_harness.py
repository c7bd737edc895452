"""What the xDS tests share: tiny gRPC backends registered as nodes, bootstrap files, and stock
xDS clients (grpcio's, grpc-js-xds's) in processes of their own whose picks the test reads."""

from __future__ import annotations

import collections
import contextlib
import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import grpc
import grpc.aio

from tests.support.waiting import eventually

CLIENT = Path(__file__).with_name("xds_client.py")


class Backend:
    """A gRPC server on loopback whose one method, `/test.Backend/Name`, answers its name."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.server = grpc.aio.server()
        self.port = 0

    async def start(self) -> Backend:
        async def answer(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
            return self.name.encode()

        identity = lambda data: data  # noqa: E731
        self.server.add_generic_rpc_handlers(
            (
                grpc.method_handlers_generic_handler(
                    "test.Backend",
                    {"Name": grpc.unary_unary_rpc_method_handler(answer, identity, identity)},
                ),
            )
        )
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        await self.server.start()
        return self

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def stop(self) -> None:
        await self.server.stop(0)


def write_bootstrap(
    path: Path, frontends: Sequence[str], node: dict[str, Any] | None = None
) -> Path:
    """A bootstrap naming one server_uri that resolves to every frontend (`ipv4:A,B`): stock
    clients use only the first xds_server (docs/design.md §12)."""
    uri = "ipv4:" + ",".join(frontends) if len(frontends) > 1 else frontends[0]
    bootstrap = {
        "xds_servers": [
            {
                "server_uri": uri,
                "channel_creds": [{"type": "insecure"}],
                "server_features": ["xds_v3"],
            }
        ],
        "node": node or {"id": "test-client", "locality": {"zone": "test"}},
    }
    path.write_text(json.dumps(bootstrap, indent=2))
    return path


class Picks:
    """The lines of a client process: its picks in order, read on a thread."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        self.lines: list[str] = []
        self.csds_port = 0
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            kind, _, value = line.strip().partition(" ")
            if kind == "csds":
                self.csds_port = int(value)
            elif kind in ("pick", "error"):
                with self._lock:
                    self.lines.append(line.strip())

    def mark(self) -> int:
        with self._lock:
            return len(self.lines)

    def since(self, mark: int) -> list[str]:
        with self._lock:
            return self.lines[mark:]

    def recent(self, count: int, since: int = 0) -> list[str] | None:
        """The last `count` picks (backend names) after `since`; None until there are that many,
        or when any of them is an error."""
        lines = self.since(since)[-count:]
        if len(lines) < count or any(not line.startswith("pick ") for line in lines):
            return None
        return [line.removeprefix("pick ") for line in lines]

    def shares(self, count: int, since: int = 0) -> collections.Counter[str] | None:
        picks = self.recent(count, since)
        return None if picks is None else collections.Counter(picks)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            assert self.process.stdin is not None
            self.process.stdin.close()
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._reader.join(5)  # the pipe ends with the process
        if self.process.stdout is not None:
            self.process.stdout.close()


def start_python_client(target: str, bootstrap: Path, log: Path) -> Picks:
    env = {**os.environ, "GRPC_XDS_BOOTSTRAP": str(bootstrap)}
    with log.open("a") as stderr:  # the child holds its own descriptor
        process = subprocess.Popen(
            [sys.executable, str(CLIENT), target],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            env=env,
        )
    return Picks(process)


async def wait_csds(picks: Picks, timeout: float = 10.0) -> int:
    """The client's CSDS port (its first line)."""
    return await eventually(lambda: picks.csds_port, timeout, message="the client's CSDS port")


REPO = Path(__file__).resolve().parents[2]
NODE_CLIENT = Path(__file__).with_name("xds_client.js")
NODE_MODULES = REPO / ".node-xds" / "node_modules"


def start_node_client(target: str, bootstrap: Path, log: Path) -> Picks:
    """grpc-js-xds's client (`make system-node-xds` installs it); fails saying so without it."""
    node = shutil.which("node")
    if node is None or not (NODE_MODULES / "@grpc" / "grpc-js-xds").is_dir():
        raise AssertionError("the Node xDS client is not installed: run `make system-node-xds`")
    env = {**os.environ, "GRPC_XDS_BOOTSTRAP": str(bootstrap), "NODE_PATH": str(NODE_MODULES)}
    with log.open("a") as stderr:  # the child holds its own descriptor
        process = subprocess.Popen(
            [node, str(NODE_CLIENT), target],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            env=env,
        )
    return Picks(process)
