"""The local etcd of `serve` (no endpoints configured): started, made sure it is ours, kept alive.

- Started only on free ports, and ready only when the etcd answering on its client port is the
  process started here (embedded_etcd.EtcdServer.wait_ready): with the port taken, the frontend
  used to attach to whatever etcd answered there (issue 11, problem 3).
- When it dies (`kill -9`, a crash), it is started again after a jittered backoff, and the
  frontend's watch reconnects as it would to any etcd coming back. After `max_restarts` failed
  restarts in a row, `serve` gives up and exits 1 naming the setting (decision D44): a frontend
  that neither restarts its etcd nor exits serves stale lists for ever.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time

from registry_service.process.embedded_etcd import EtcdNotFoundError, EtcdServer, EtcdStartError
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
        etcd.start()
        await asyncio.to_thread(etcd.wait_ready, _READY_TIMEOUT_SECONDS)
    except EtcdStartError as err:
        etcd.stop()
        raise _refusal(etcd, err) from None
    except TimeoutError:
        etcd.stop()
        raise ServeError(
            f"the local etcd was not ready within {_READY_TIMEOUT_SECONDS:g}s (its log: "
            f"{etcd.log_path}): set {env_name('etcd_endpoints')} to use another etcd"
        ) from None


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
