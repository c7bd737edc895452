"""A client process that holds registrations with the SDK, as a fleet would, and reports how its
renewals went (bench/renewal_tap.py reads them off the wire).

    python -m bench.holders TARGET TTL PREFIX TYPE many|single|etcd

`many`: ONE RegistryClient for all its registrations (one KeepAlive stream; the SDK renews them
together each tick). `single`: one RegistryClient per registration, each on its own connection.
`etcd` (the baseline; TARGET is etcd): bare leases over one LeaseKeepAlive stream
(bench/etcd_holder.py).
Prints `ready`, then answers each command on stdin with one JSON line:

    add N RATE IN_FLIGHT SECONDS   register N more, at most RATE a second (0: unpaced) and
                                   IN_FLIGHT at once; a refused one (RESOURCE_EXHAUSTED) is tried
                                   again after the pushback, until SECONDS have passed
    report T0 T1                   renewals within [T0, T1] (CLOCK_MONOTONIC, comparable across
                                   the processes of one machine) of those held since T0
    series T0 T1 STEP              (on time, owed) per renewal period starting every STEP s
    cpu                            this process's CPU seconds so far
    ids                            the ids of the registrations it holds

It never deregisters: it is killed (a registration it held then expires, as a crashed node's).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import random
import sys
import time
from typing import Any

from bench.etcd_holder import EtcdHolder
from bench.renewal_tap import RenewalLog, tap_sdk_channels
from client_sdk import (
    ClientConfig,
    Node,
    Registration,
    RegistryClient,
    RegistryError,
    ResourceExhaustedError,
)

METADATA = {"zone": "a", "version": "2", "role": "worker", "rack": "r1"}


def client_config(config_type: type[ClientConfig] = ClientConfig) -> ClientConfig:
    """The fleet's SDK settings. An SDK that waits out refused Registers inside register()
    (`register_overload_wait_seconds`, where it has it) is told not to: every refusal reaches
    this process, which counts it and tries again after the pushback as before."""
    if "register_overload_wait_seconds" in {f.name for f in dataclasses.fields(config_type)}:
        return config_type(**{"register_overload_wait_seconds": 0})
    return config_type()


class Holder:
    def __init__(self, target: str, ttl: int, prefix: str, node_type: str, single: bool) -> None:
        self.target = target
        self.ttl = ttl
        self.prefix = prefix
        self.node_type = node_type
        self.single = single
        self.log = RenewalLog(ttl / 3)
        tap_sdk_channels(self.log, own_connection=single)
        self.config = client_config()
        self.shared: RegistryClient | None = (
            None if single else RegistryClient(target, config=self.config)
        )
        self.clients: list[RegistryClient] = []
        self.registrations: list[Registration] = []
        self.watchers: list[asyncio.Task[None]] = []
        self.next_id = 0

    async def _register_one(self, node_id: str, deadline: float, tally: dict[str, int]) -> None:
        """Registers one node, as a fleet's client would: a refused Register (RESOURCE_EXHAUSTED)
        is tried again after the pushback; any other failure may have registered it all the
        same (a timeout), so the node is given up and another id registered in its place."""
        client = self.shared or RegistryClient(self.target, config=self.config)
        name = node_id
        for attempt in range(1, 1_000):
            node = Node(name, self.node_type, "dc1", "10.0.0.1:7000", metadata=METADATA)
            pause = random.uniform(0.5, 1.5)
            try:
                registration = await client.register(node, ttl_seconds=self.ttl)
                break
            except ResourceExhaustedError as err:
                tally["refused"] += 1  # nothing registered: the same id again
                pause = err.retry_after_seconds or pause
            except RegistryError as err:
                tally["failed"] += 1
                tally[f"failed {err.code.name}"] = tally.get(f"failed {err.code.name}", 0) + 1
                name = f"{node_id}r{attempt}"
            if time.monotonic() + pause > deadline:
                tally["unregistered"] += 1
                if client is not self.shared:
                    await client.close()
                return
            await asyncio.sleep(pause)
        else:
            tally["unregistered"] += 1
            return
        self.log.registered(registration.key.id, time.monotonic())
        if client is not self.shared:
            self.clients.append(client)
        self.registrations.append(registration)
        self.watchers.append(asyncio.create_task(self._follow(registration)))
        tally["registered"] += 1

    async def _follow(self, registration: Registration) -> None:
        async for state in registration.state_changes():
            self.log.state(registration.key.id, state.value, time.monotonic())

    async def add(self, count: int, rate: float, in_flight: int, seconds: float) -> dict[str, Any]:
        started = time.monotonic()
        deadline = started + seconds
        tally = {"registered": 0, "refused": 0, "unregistered": 0, "failed": 0}
        ids = [f"{self.prefix}-{i}" for i in range(self.next_id, self.next_id + count)]
        self.next_id += count
        pending = iter(enumerate(ids))

        async def worker() -> None:
            for i, node_id in pending:
                if rate:
                    await asyncio.sleep(max(0.0, started + i / rate - time.monotonic()))
                if time.monotonic() > deadline:
                    tally["unregistered"] += 1
                    continue
                await self._register_one(node_id, deadline, tally)

        await asyncio.gather(*(worker() for _ in range(max(1, in_flight))))
        return {**tally, "seconds": time.monotonic() - started, "ended": time.monotonic()}

    def cpu(self) -> dict[str, float]:
        return {"cpu_seconds": time.process_time()}


async def serve(holder: Holder | EtcdHolder) -> None:
    print("ready", flush=True)
    loop = asyncio.get_running_loop()
    while line := await loop.run_in_executor(None, sys.stdin.readline):
        command, *args = line.split()
        answer: Any
        if command == "add":
            count, in_flight = int(args[0]), int(args[2])
            answer = await holder.add(count, float(args[1]), in_flight, float(args[3]))
        elif command == "report":
            answer = await asyncio.to_thread(holder.log.report, float(args[0]), float(args[1]))
        elif command == "series":
            # Seconds of CPU for a long window (3.5 s for 5,000 registrations over 60 s): done
            # on the event loop, it starved the SDK's renewals until the leases it measures
            # expired. A thread leaves the loop its turns (the log is only appended to).
            answer = await asyncio.to_thread(
                holder.log.series, float(args[0]), float(args[1]), float(args[2])
            )
        elif command == "cpu":
            answer = holder.cpu()
        elif command == "ids":
            answer = list(holder.log.index)
        else:
            answer = {"error": f"unknown command {command!r}"}
        print(json.dumps(answer), flush=True)


async def main(target: str, ttl: int, prefix: str, node_type: str, mode: str) -> None:
    if mode == "etcd":
        await serve(EtcdHolder(target, ttl))
    else:
        await serve(Holder(target, ttl, prefix, node_type, mode == "single"))


if __name__ == "__main__":
    target, ttl, prefix, node_type, mode = sys.argv[1:6]
    asyncio.run(main(target, int(ttl), prefix, node_type, mode))
