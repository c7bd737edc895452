"""The recent changes of one registry, kept so that a watch can resume without a resync (D6).

One history per registry a frontend serves: its own etcd (the watch hub's) and each remote
datacenter it follows (hub/remote_view.py), each in that registry's own revisions.
"""

from __future__ import annotations

import collections

from registry_service.domain import DeltaMessage, ResyncReason


class ChangeHistory:
    """The last `limit` deltas of one registry, and the floor below which it cannot resume."""

    def __init__(self, limit: int) -> None:
        self._messages: collections.deque[DeltaMessage] = collections.deque()
        self._limit = limit
        self.floor = 0

    def append(self, message: DeltaMessage) -> None:
        """Keeps one more delta; past `limit`, the oldest goes and the floor rises to it."""
        self._messages.append(message)
        if len(self._messages) > self._limit:
            self.floor = self._messages.popleft().revision

    def reset(self, floor: int) -> None:
        """Forgets every change: the registry was re-read at `floor` (a relist), so resumes from
        before it can no longer be served exactly."""
        self._messages.clear()
        self.floor = floor

    def since(self, revision: int, current: int) -> list[DeltaMessage] | ResyncReason:
        """The deltas after `revision`, or why they cannot be given: COMPACTED when `revision` is
        older than the history, UNKNOWN_REVISION when it is newer than `current` (the revision
        the registry's view has reached)."""
        if revision < self.floor:
            return ResyncReason.COMPACTED
        if revision > current:
            return ResyncReason.UNKNOWN_REVISION
        return [message for message in self._messages if message.revision > revision]
