"""L11: a registry is trusted only if it never expires a node that keeps renewing, whatever the
load (issue 21). A fleet restart, scaled to this machine: Registers sent as fast as one client can
(64 in flight) while two other clients keep their nodes renewing, on a frontend with its default
admission control. No renewing node is reported gone or SUSPECT, the burst completes (a Register
refused as overloaded is sent again after the pushback), every held registration is still its
first incarnation, renewing, afterwards, and the frontend kept its evictor election throughout
(its own leases renew on a stream of their own, D71)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from noderegistry.v1 import registry_pb2 as pb

from tests.support.frontends import FrontendProcess
from tests.support.history import ResumingWatcher
from tests.support.waiting import eventually

pytestmark = pytest.mark.chaos

TTL = 3  # a renewal every second, the shortest TTL a Register may ask for
HELD_PER_CLIENT = 300
BURST = 800
BURST_IN_FLIGHT = 64
SCRIPT = Path(__file__).with_name("fleet_process.py")


class FleetProcess:
    """A client process of the fleet (tests/chaos/fleet_process.py)."""

    def __init__(self, targets: list[str], prefix: str, count: int, in_flight: int) -> None:
        arguments = [",".join(targets), prefix, str(count), str(in_flight), str(TTL)]
        self.process = subprocess.Popen(
            [sys.executable, str(SCRIPT), *arguments],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])},
        )

    async def line(self, timeout: float) -> dict[str, Any]:
        assert self.process.stdout is not None
        async with asyncio.timeout(timeout):
            line = await asyncio.to_thread(self.process.stdout.readline)
        assert line, "the fleet process ended"
        answer: dict[str, Any] = json.loads(line)
        return answer

    async def report(self) -> dict[str, Any]:
        assert self.process.stdin is not None
        self.process.stdin.write("report\n")
        self.process.stdin.flush()
        return await self.line(30)

    def kill(self) -> None:
        self.process.kill()
        self.process.wait()
        for pipe in (self.process.stdin, self.process.stdout):
            if pipe is not None:
                pipe.close()


def suspected(watcher: ResumingWatcher) -> set[str]:
    """Nodes the watcher ever saw SUSPECT."""
    return {
        event.node.id
        for message in watcher.messages
        if message.WhichOneof("message") == "delta"
        for event in message.delta.events
        if event.node.status == pb.NODE_STATUS_SUSPECT
    }


def election_lines(frontend: FrontendProcess) -> tuple[int, list[str]]:
    """How often the frontend's log says it took the lead of eviction, and its lines saying it
    lost it (its election lease ran out, or its key went: core/evictor.py, D84)."""
    lines = frontend.log_path.read_text().splitlines()
    led = sum("leads eviction" in line for line in lines)
    lost = [line for line in lines if "lost its election lease" in line or "lost its key" in line]
    return led, lost


@pytest.mark.timeout(420)
async def test_l11_a_register_burst_over_held_leases_expires_no_renewing_node(rig):
    # 1. One frontend with admission control as shipped (the tests' default turns the event
    #    loop's lag signal off; here it is what protects the renewals).
    r = await rig(frontends=1, admission_loop_lag_seconds=0.1, admission_max_wait_seconds=1.0)
    (frontend,) = r.frontends
    await eventually(
        lambda: election_lines(frontend)[0] == 1, timeout=30, message="it leads eviction"
    )
    watcher = ResumingWatcher(r.targets).start()
    fleet: list[FleetProcess] = []
    try:
        # 2. Two clients hold their nodes, renewing every second.
        held = [FleetProcess(r.targets, f"held{i}-", HELD_PER_CLIENT, 16) for i in range(2)]
        fleet += held
        for client in held:
            assert (await client.line(180))["registered"] == HELD_PER_CLIENT
        # 3. The burst: one client registers as fast as it can.
        burst = FleetProcess(r.targets, "burst-", BURST, BURST_IN_FLIGHT)
        fleet.append(burst)
        burst_done = await burst.line(300)
        assert burst_done["registered"] == BURST
        print(f"burst of {BURST}: {burst_done['seconds']:.1f} s")  # printed, not asserted
        # 4. Recovery: every held registration renewing, still its first incarnation.
        for client in held:

            async def renewing(client: FleetProcess = client) -> bool:
                report = await client.report()
                return report["active"] == HELD_PER_CLIENT

            await eventually(renewing, timeout=60, message="every held registration ACTIVE")
            report = await client.report()
            assert (report["reregistrations"], report["incarnations_above_1"]) == (0, 0)
        # 5. No renewing node was ever reported gone or SUSPECT, burst or held.
        assert watcher.removed() == []
        assert suspected(watcher) == set()
        await eventually(
            lambda: len(watcher.nodes) == 2 * HELD_PER_CLIENT + BURST,
            timeout=30,
            message="the watcher has every node",
        )
        # 6. The evictor kept its election through the burst (its lease of 2 s in these tests,
        #    renewed every 0.7 s): led once, never lost.
        assert election_lines(frontend) == (1, [])
    finally:
        await watcher.close()
        for client in fleet:
            client.kill()
