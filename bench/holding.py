"""The parent's side of the holder processes (bench/holders.py): a fleet of SDK clients holding
registrations of one node type against one frontend, asked to register more and to say how their
renewals went over a window."""

from __future__ import annotations

import asyncio
import json
import secrets
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.renewal_tap import on_time_share
from bench.system import Processes


@dataclass
class Renewals:
    """The renewals of a fleet over one window (sums over its processes)."""

    held: int = 0
    owed: float = 0.0
    on_time: float = 0.0
    late: int = 0
    refused: int = 0
    refused_registrations: int = 0
    unanswered_registrations: int = 0
    registrations_not_active: int = 0
    suspended_transitions: int = 0
    lost_transitions: int = 0

    @property
    def share(self) -> float:
        return on_time_share(self.on_time, self.owed)

    def describe(self) -> str:
        text = f"{self.share:.1%} of {self.owed:,.0f} owed on time ({self.held:,} held)"
        if self.late or self.refused:
            text += f", {self.late:,} late, {self.refused:,} refused"
        if self.registrations_not_active:
            text += f"; {self.registrations_not_active:,} left ACTIVE in the SDK"
        return text


class HolderFleet:
    """Holder processes of one node type; `add` spreads new registrations over them evenly."""

    def __init__(
        self,
        processes: Processes,
        target: str,
        ttl: int,
        node_type: str,
        log: Path,
        *,
        mode: str = "many",
    ) -> None:
        """`mode`: many (a client holding many), single (a client per registration) or etcd
        (the baseline: `target` is etcd and the registrations bare leases)."""
        self._processes = processes
        self.target = target
        self.ttl = ttl
        self.node_type = node_type
        self.mode = mode
        self._log = log
        self.clients: list[subprocess.Popen[str]] = []
        self.assigned: list[int] = []
        self._run = secrets.token_hex(2)

    async def grow(self, count: int) -> None:
        """Starts processes until there are `count`."""
        started = []
        while len(self.clients) < count:
            prefix = f"{self.node_type}{self._run}p{len(self.clients)}"
            process = self._processes.start(
                "-m",
                "bench.holders",
                self.target,
                str(self.ttl),
                prefix,
                self.node_type,
                self.mode,
                stdin=True,
                log=self._log,
            )
            self.clients.append(process)
            self.assigned.append(0)
            started.append(process)
        for process in started:
            line = await asyncio.to_thread(_read_line, process)
            if line.strip() != "ready":
                raise RuntimeError(f"holder process failed: {line!r}\n{self._tail()}")

    def _tail(self) -> str:
        return self._log.read_text()[-3000:] if self._log.exists() else ""

    async def _ask(self, commands: dict[int, str]) -> list[Any]:
        """Sends each process its command; their answers, in the same order."""
        for position, command in commands.items():
            stdin = self.clients[position].stdin
            assert stdin is not None
            stdin.write(command + "\n")
            stdin.flush()
        lines = await asyncio.gather(
            *(asyncio.to_thread(_read_line, self.clients[p]) for p in commands)
        )
        answers = []
        for line in lines:
            if not line:
                raise RuntimeError(f"a holder process ended\n{self._tail()}")
            answers.append(json.loads(line))
        return answers

    async def add(self, total: int, rate: float, in_flight: int, seconds: float) -> dict[str, Any]:
        """Registers `total` more (the least loaded processes first), at `rate` per second and
        `in_flight` at once in all, giving up on refused ones after `seconds`."""
        shares = [0] * len(self.clients)
        for _ in range(total):
            position = min(range(len(self.clients)), key=lambda p: self.assigned[p] + shares[p])
            shares[position] += 1
        busy = {p: n for p, n in enumerate(shares) if n}
        answers = await self._ask(
            {
                p: f"add {n} {rate * n / total:.3f} {max(1, round(in_flight * n / total))} "
                f"{seconds}"
                for p, n in busy.items()
            }
        )
        for position, count in busy.items():
            self.assigned[position] += count
        summed: dict[str, Any] = {}
        for answer in answers:
            for name, value in answer.items():
                if name in ("ended", "seconds"):
                    summed[name] = max(summed.get(name, 0.0), value)
                else:
                    summed[name] = summed.get(name, 0) + value
        return summed

    async def report(self, t0: float, t1: float) -> Renewals:
        """The renewals over [t0, t1], at least one renewal period long (waited for)."""
        t1 = max(t1, t0 + self.ttl / 3)
        await asyncio.sleep(max(0.0, t1 - time.monotonic()))
        answers = await self._ask({p: f"report {t0} {t1}" for p in range(len(self.clients))})
        total = Renewals()
        for answer in answers:
            for name, value in answer.items():
                setattr(total, name, getattr(total, name) + value)
        return total

    async def series(self, t0: float, t1: float, step: float) -> list[float]:
        """The share on time over each renewal period starting every `step` from t0."""
        answers = await self._ask({p: f"series {t0} {t1} {step}" for p in range(len(self.clients))})
        windows = min((len(a) for a in answers), default=0)
        return [
            on_time_share(sum(a[w][0] for a in answers), sum(a[w][1] for a in answers))
            for w in range(windows)
        ]

    async def ids(self) -> set[str]:
        """The ids of every registration the fleet holds."""
        answers: list[Any] = await self._ask({p: "ids" for p in range(len(self.clients))})
        return {node_id for answer in answers for node_id in answer}

    async def cpu_seconds(self) -> float:
        answers = await self._ask({p: "cpu" for p in range(len(self.clients))})
        return float(sum(answer["cpu_seconds"] for answer in answers))

    def stop(self) -> None:
        for process in self.clients:
            Processes.stop(process)


def _read_line(process: subprocess.Popen[str]) -> str:
    assert process.stdout is not None
    return process.stdout.readline()
