"""Credentials read again when their files change: the tokens file and every certificate, key
and CA bundle a frontend uses, without a restart (docs/design.md §14).

Each `Reloadable` is a set of files that go together (a certificate, its key and its CA) with
a `load` that reads and checks them all and an `apply` that puts the result in use. Every
`credentials_reload_seconds` the files are stat'ed; when any of a set changed (its inode, size,
modification or change time: a Kubernetes Secret volume swaps a symlink, an editor rewrites in
place), the set is loaded: on success it is applied and one line says so; on failure the
credentials in use stay and one line says why. A set changed half-way (a new certificate
beside the old key) fails its load and is tried again when the other file changes too.

Polling, not inotify: a Secret volume's update is a rename of a directory that inotify watches
of the files would miss, polling costs one stat per file per period, and it needs no
dependency.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")
FileSignature = tuple[int, int, int, int, int] | None
Signature = tuple[FileSignature, ...]


@dataclass(frozen=True)
class Reloadable(Generic[T]):
    """A set of credential files read again together."""

    key: str
    """A short name for metrics: `tokens`, `server_tls`, `etcd_tls`, `peer_tls`."""
    name: str
    """What they are, for the log lines: `tokens file`."""
    files: tuple[tuple[str, str], ...]
    """(setting, path) of each file; a setting left empty is left out."""
    load: Callable[[], T]
    """Reads and checks the files; raises with a one-line reason when they cannot be used."""
    apply: Callable[[T], Any]
    """Puts what `load` returned in use."""
    describe: Callable[[T], str] = lambda _: ""
    """A few words about what was loaded, for the log line (`3 tokens`)."""


def _signature(paths: tuple[str, ...]) -> Signature:
    stats: list[FileSignature] = []
    for path in paths:
        try:
            stat = os.stat(path)
        except OSError:
            stats.append(None)
            continue
        stats.append((stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns))
    return tuple(stats)


class _Watched:
    def __init__(self, reloadable: Reloadable[Any]) -> None:
        self.reloadable = reloadable
        self.paths = tuple(path for _, path in reloadable.files if path)
        self.settings = ", ".join(setting for setting, path in reloadable.files if path)
        self.signature = _signature(self.paths)


class CredentialFiles:
    """The credential files of one process, checked for changes every period."""

    def __init__(self, observe: Callable[[str, bool], None] | None = None) -> None:
        """`observe(key, applied)` is called after each attempt to load a changed set."""
        self._watched: list[_Watched] = []
        self.observe = observe

    def watch(self, reloadable: Reloadable[Any]) -> None:
        """Follows the files from now on (what they hold now is what is in use)."""
        watched = _Watched(reloadable)
        if watched.paths:
            self._watched.append(watched)

    def check(self) -> None:
        """Loads and applies each set whose files changed since they were last looked at."""
        for watched in self._watched:
            signature = _signature(watched.paths)
            if signature == watched.signature:
                continue
            watched.signature = signature
            self._reload(watched)

    def _reload(self, watched: _Watched) -> None:
        reloadable = watched.reloadable
        try:
            value = reloadable.load()
            reloadable.apply(value)
        except Exception as err:  # whatever failed, the credentials in use stay
            reason = " ".join(str(err).split()) or type(err).__name__
            log.warning(
                "the %s changed but cannot be used; kept the one in use (%s): %s",
                reloadable.name,
                watched.settings,
                reason,
            )
            self._count(reloadable.key, applied=False)
            return
        detail = reloadable.describe(value)
        log.info(
            "reloaded the %s from %s (%s)%s",
            reloadable.name,
            ", ".join(watched.paths),
            watched.settings,
            f": {detail}" if detail else "",
        )
        self._count(reloadable.key, applied=True)

    def _count(self, key: str, *, applied: bool) -> None:
        if self.observe is not None:
            self.observe(key, applied)

    async def run(self, period_seconds: float) -> None:
        """Checks every `period_seconds` until cancelled (never when it is 0)."""
        if period_seconds <= 0 or not self._watched:
            return
        while True:
            await asyncio.sleep(period_seconds)
            self.check()  # on the event loop: `apply` swaps what the loop's servers use
