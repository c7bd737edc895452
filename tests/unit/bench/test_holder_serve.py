"""A holder answers the bench's questions without taking the event loop from the SDK it runs:
its renewals must keep their turns while a long report is computed (bench/holders.py `serve`)."""

from __future__ import annotations

import asyncio
import io
import json
import threading
import time
from types import SimpleNamespace

from bench import holders


class _SlowLog:
    """A renewal log whose series spins until the event loop has run a tick (or 5 s pass): on
    the loop itself it could never see one."""

    def __init__(self, started: threading.Event, ticked: threading.Event) -> None:
        self._started, self._ticked = started, ticked

    def series(self, start: float, end: float, step: float) -> list[float]:
        self._started.set()
        deadline = time.monotonic() + 5.0
        while not self._ticked.is_set() and time.monotonic() < deadline:
            pass
        return [1.0] if self._ticked.is_set() else [0.0]

    report = series


async def test_a_long_series_leaves_the_event_loop_its_turns(monkeypatch, capsys):
    started, ticked = threading.Event(), threading.Event()
    holder = SimpleNamespace(log=_SlowLog(started, ticked))
    monkeypatch.setattr(holders.sys, "stdin", io.StringIO("series 0 60 0.25\n"))

    async def ticker() -> None:
        # The loop's turns while the series is computed (the SDK's renewals would be here).
        assert await asyncio.to_thread(started.wait, 5.0)
        ticked.set()

    await asyncio.gather(holders.serve(holder), ticker())  # type: ignore[arg-type]
    ready, answer = capsys.readouterr().out.splitlines()
    assert (ready, json.loads(answer)) == ("ready", [1.0])
