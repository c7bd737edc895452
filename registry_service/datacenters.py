"""Which datacenter a registry is, and which others it follows (federation, docs/design.md §10).

Pure: the settings `datacenter` and `remote_datacenters` parsed and checked, and the one rule of
writes: a registry with a datacenter of its own writes that datacenter's nodes only.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from registry_service.domain import NodeKey
from registry_service.errors import WrongDatacenterError

_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
_TARGET = re.compile(r"(dns:///)?[A-Za-z0-9.\-\[\]:]+:\d{1,5}")


class DatacentersError(ValueError):
    """`remote_datacenters` or `datacenter` is malformed; the message says how, `setting` which."""

    def __init__(self, message: str, setting: str = "remote_datacenters") -> None:
        super().__init__(message)
        self.setting = setting


def parse_remote_datacenters(text: str) -> dict[str, tuple[str, ...]]:
    """`"dc2=host:port,host:port;dc3=host:port"` -> {"dc2": (...), "dc3": (...)}.

    Raises:
        DatacentersError: an entry without `=`, a bad name, a repeated name, no targets, or a
            target that is not host:port.
    """
    remotes: dict[str, tuple[str, ...]] = {}
    for entry in (part.strip() for part in text.split(";")):
        if not entry:
            continue
        name, sep, targets_text = entry.partition("=")
        name = name.strip()
        if not sep:
            raise DatacentersError(f"{entry!r} is not NAME=host:port[,host:port...]")
        if not _NAME.fullmatch(name):
            raise DatacentersError(f"{name!r} is not a datacenter name ([a-z0-9][a-z0-9-]*)")
        if name in remotes:
            raise DatacentersError(f"datacenter {name} is listed twice")
        targets = tuple(t.strip() for t in targets_text.split(",") if t.strip())
        if not targets:
            raise DatacentersError(f"datacenter {name} has no frontend address (host:port)")
        for target in targets:
            if not _TARGET.fullmatch(target):
                raise DatacentersError(f"{name}: {target!r} is not host:port")
        remotes[name] = targets
    return remotes


@dataclass(frozen=True)
class Datacenters:
    """The local datacenter ("" when one etcd holds any number of them, as before federation)
    and the remote ones this registry follows, with their frontends' addresses."""

    local: str = ""
    remotes: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, datacenter: str, remote_datacenters: str) -> Datacenters:
        """Raises DatacentersError: a malformed list, remotes without a local datacenter, or the
        local datacenter among the remotes."""
        if datacenter and not _NAME.fullmatch(datacenter):
            raise DatacentersError(
                f"{datacenter!r} is not a datacenter name ([a-z0-9][a-z0-9-]*)", "datacenter"
            )
        remotes = parse_remote_datacenters(remote_datacenters)
        if remotes and not datacenter:
            raise DatacentersError(
                "following remote datacenters needs this registry's own datacenter", "datacenter"
            )
        if datacenter in remotes:
            raise DatacentersError(f"{datacenter} is this registry's own datacenter, not a remote")
        return cls(datacenter, remotes)

    def check_writable(self, key: NodeKey) -> None:
        """Raises WrongDatacenterError for a node of a datacenter this registry does not write."""
        if not self.local or key.datacenter == self.local:
            return
        targets = self.remotes.get(key.datacenter)
        where = (
            f"its frontends: {','.join(targets)}"
            if targets
            else "this registry does not follow it: ask your operator for its address"
        )
        raise WrongDatacenterError(
            f"node {key} belongs to datacenter {key.datacenter}, and this is datacenter "
            f"{self.local}'s registry: register, renew and deregister it with datacenter "
            f"{key.datacenter}'s registry ({where})"
        )
