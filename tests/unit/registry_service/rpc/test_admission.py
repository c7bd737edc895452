"""Renewals first (D72): what a congested frontend refuses, what waits in line, and what the
refusal says."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time

import pytest

from registry_service.core.concurrency_limit import LimitBounds
from registry_service.errors import OverloadedError
from registry_service.rpc.admission import Admission, AdmissionConfig
from registry_service.rpc.status import pushback_of, status_of

CONFIG = AdmissionConfig(
    bounds=LimitBounds(initial_limit=2, min_limit=1, max_limit=8),
    loop_lag_seconds=0.1,
    retry_after_seconds=2.0,
    max_waiting=1,
    max_wait_seconds=0.05,
)


def admission() -> Admission:
    return Admission(CONFIG, jitter=lambda low, high: 1.0)


async def test_a_register_beyond_the_limit_waits_in_line_for_a_slot() -> None:
    gate = admission()
    release = asyncio.Event()

    async def hold() -> None:
        async with gate.register():
            await release.wait()

    holders = [asyncio.create_task(hold()) for _ in range(2)]
    for _ in range(3):
        await asyncio.sleep(0)
    assert gate.registers.in_flight == 2
    waiter = asyncio.create_task(hold())
    for _ in range(3):
        await asyncio.sleep(0)
    assert gate.waiting == 1 and not waiter.done()
    release.set()
    await asyncio.gather(*holders, waiter)
    assert gate.registers_refused == 0 and gate.registers.in_flight == 0


async def test_a_register_that_waits_too_long_or_finds_the_line_full_is_refused() -> None:
    gate = admission()
    release = asyncio.Event()

    async def hold() -> None:
        async with gate.register():
            await release.wait()

    holders = [asyncio.create_task(hold()) for _ in range(3)]  # two run, one waits
    for _ in range(3):
        await asyncio.sleep(0)
    with pytest.raises(OverloadedError) as full:  # the line (one place) is taken
        async with gate.register():
            pass
    assert "1 waiting" in str(full.value)
    with pytest.raises(OverloadedError) as refused:  # the one in line waited too long
        await holders[2]
    code, message = status_of(refused.value)
    assert code.name == "RESOURCE_EXHAUSTED"
    assert "serves renewals first" in message and "retry in 2 s" in message
    assert pushback_of(refused.value) == (("grpc-retry-pushback-ms", "2000"),)
    assert gate.registers_refused == 2
    release.set()
    await asyncio.gather(*holders[:2])
    async with gate.register():  # the slots are free again
        pass


def test_reads_are_refused_only_while_the_event_loop_lags() -> None:
    gate = admission()
    gate.observe_lag(0.05)
    gate.read("GetNodes")
    gate.observe_lag(0.15)
    with pytest.raises(OverloadedError) as refused:
        gate.read("WatchNodes")
    assert "WatchNodes refused" in str(refused.value) and "150 ms behind" in str(refused.value)
    assert gate.reads_refused == 1
    gate.observe_lag(0.0)
    gate.read("GetNodes")


async def test_a_saturated_event_loop_takes_no_register_until_it_keeps_up_again() -> None:
    gate = admission()
    gate.observe_lag(0.5)  # over four times the threshold
    assert gate.registers.limit == 0
    with pytest.raises(OverloadedError):  # refused at once: nothing waits for a saturated loop
        async with gate.register():
            pass
    gate.observe_lag(0.01)
    async with gate.register():
        pass


async def test_admission_control_off_refuses_nothing() -> None:
    gate = Admission.off()
    gate.observe_lag(10.0)
    gate.read("GetNodes")
    async with gate.register(), gate.register(), gate.register():
        pass


def _leave_now(held: contextlib.AbstractAsyncContextManager[None]) -> None:
    """Leaves a Register's slot synchronously (its exit awaits nothing): the slot is handed to
    the next in line within the caller's loop step."""
    with pytest.raises(StopIteration):
        held.__aexit__(None, None, None).send(None)


async def _in_line(
    gate: Admission,
) -> tuple[list[contextlib.AbstractAsyncContextManager[None]], asyncio.Task[None]]:
    """Both slots held (by the test), and a Register waiting in line for one."""
    held = [gate.register(), gate.register()]
    for slot in held:
        await slot.__aenter__()

    async def wait_in_line() -> None:
        async with gate.register():
            await asyncio.sleep(0)

    waiter = asyncio.create_task(wait_in_line())
    for _ in range(3):
        await asyncio.sleep(0)
    assert gate.waiting == 1 and gate.registers.in_flight == 2
    return held, waiter


async def test_a_register_cancelled_as_it_is_handed_a_slot_gives_the_slot_back() -> None:
    """Before: the slot went to a call that no longer ran, and never came back (the limit lost
    one slot for good, per such call)."""
    gate = admission()
    held, waiter = await _in_line(gate)
    _leave_now(held[0])  # the waiter is handed the slot...
    waiter.cancel()  # ...and cancelled in the same step (the client went away)
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert gate.registers.in_flight == 1  # the test's other slot only
    await held[1].__aexit__(None, None, None)
    assert gate.registers.in_flight == 0
    async with gate.register(), gate.register():  # the whole limit is there again
        assert gate.waiting == 0


async def test_a_register_handed_a_slot_as_its_wait_times_out_takes_it() -> None:
    """Before: refused as if it had waited in vain, and its slot never released."""
    patient = dataclasses.replace(CONFIG, max_wait_seconds=0.3)  # room for a slow machine
    gate = Admission(patient, jitter=lambda low, high: 1.0)
    held, waiter = await _in_line(gate)
    loop = asyncio.get_running_loop()
    # Due in the same loop step as the wait's timeout, and run before it: the slot is handed
    # out, then the timeout fires while the waiter has not woken yet.
    loop.call_later(0.0, _leave_now, held[0])
    # The loop is blocked (on purpose: no task may run) until both are due.
    time.sleep(patient.max_wait_seconds + 0.1)  # noqa: ASYNC251
    await waiter  # not refused: it ran in the slot it was handed
    assert gate.registers_refused == 0
    assert gate.registers.in_flight == 1
    await held[1].__aexit__(None, None, None)
    assert gate.registers.in_flight == 0
