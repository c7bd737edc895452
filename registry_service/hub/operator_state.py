"""The cluster's operator state as this frontend last read it from etcd (docs/design.md §9): the
push switch and the frontends' announcements. Pure state, no I/O.

The composition root creates it and hands it to the watch hub, the one writer: the hub applies
what its etcd watch says, in the revision etcd gives it (`load` at the initial read and after a
relist, `apply` for each batch's control changes), so every frontend and worker follows a change
within one watch round trip and a new one starts in the stored state. Everything else (the admin
surface, the metrics) reads it through `OperatorView`, which has no way to change it.
"""

from __future__ import annotations

import types
from collections.abc import Iterable, Mapping
from typing import Protocol

from registry_service.control import Announcement, PushSwitch
from registry_service.store.base import ControlChange, FrontendChanged, SwitchChanged


class OperatorView(Protocol):
    """What readers see of the operator state (read-only)."""

    @property
    def push_switch(self) -> PushSwitch:
        """The push switch as last read from etcd."""

    @property
    def push_enabled(self) -> bool:
        """Whether pushes are on (the switch's `enabled`)."""

    @property
    def frontends(self) -> Mapping[str, Announcement]:
        """The announced frontends by id."""


class OperatorState:
    """The push switch and the announced frontends, as applied from this frontend's watch."""

    def __init__(self) -> None:
        self._push_switch = PushSwitch()
        self._frontends: dict[str, Announcement] = {}

    @property
    def push_switch(self) -> PushSwitch:
        """The stored push switch (the default, on, until one is read)."""
        return self._push_switch

    @property
    def push_enabled(self) -> bool:
        """Pushes are on (the gray list may still hold some subscribers back)."""
        return self._push_switch.enabled

    @property
    def frontends(self) -> Mapping[str, Announcement]:
        """Every announced frontend by id (a read-only view that follows later changes)."""
        return types.MappingProxyType(self._frontends)

    def load(self, push_switch: PushSwitch, frontends: Mapping[str, Announcement]) -> None:
        """The state as a full read of etcd found it (initial load, or a relist)."""
        self._push_switch = push_switch
        self._frontends.clear()
        self._frontends.update(frontends)

    def apply(self, changes: Iterable[ControlChange]) -> bool:
        """Applies one revision's control changes; True when the push switch was written (the
        hub then re-decides whom it holds)."""
        switched = False
        for change in changes:
            if isinstance(change, SwitchChanged):
                self._push_switch = change.push
                switched = True
            elif isinstance(change, FrontendChanged):
                if change.announcement is None:
                    self._frontends.pop(change.id, None)
                else:
                    self._frontends[change.id] = change.announcement
        return switched
