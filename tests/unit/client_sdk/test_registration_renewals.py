"""A registration under an overloaded registry (D70): a late renewal is asked again at once and
stays ACTIVE while its lease is safe, failures retry together in one message, and a Register
refused as overloaded waits as long as the registry's pushback says."""

from __future__ import annotations

import asyncio
import math

import grpc
import pytest

from client_sdk import ClientConfig, RegistrationState, ResourceExhaustedError
from client_sdk._errors import RegistryUnavailableError, StatusCode
from client_sdk._keepalive import KeepAliveSession, LateAnswerError
from client_sdk._models import NodeKey
from client_sdk._registration import Registration
from tests.unit.client_sdk.keepalive_fakes import (
    FakeClock,
    FakeTransport,
    batch,
    node,
    ok,
    rpc_error,
    settle,
)

TTL = 3  # renewals every second, each waiting half a second for its answer


class ScriptedSession:
    """A KeepAliveSession stand-in whose renewals end as the test says."""

    def __init__(self) -> None:
        self.id = "scripted-session"
        self.clock = FakeClock()
        self.outcomes: asyncio.Queue[int | BaseException] = asyncio.Queue()
        self.asked: list[tuple[NodeKey, str, float]] = []
        self.waits: list[str] = []
        self.released = asyncio.Event()

    def now(self) -> float:
        return self.clock()

    def next_renewal_in(self, interval_seconds: float) -> float:
        self.waits.append("grid")
        return 0.0

    async def retry_point(self, cap_seconds: float) -> None:
        self.waits.append("retry")

    async def renew(self, key: NodeKey, token: str, timeout: float) -> int:
        self.asked.append((key, token, timeout))
        outcome = await self.outcomes.get()
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome


def late() -> LateAnswerError:
    return LateAnswerError(StatusCode.DEADLINE_EXCEEDED, "no KeepAlive answer")


async def registered(session: ScriptedSession) -> tuple[Registration, FakeTransport]:
    async def no_wait(_: float) -> None:
        return None

    transport = FakeTransport(ClientConfig(sleep=no_wait))
    registration = Registration(transport, session, node("a"), TTL, None)  # type: ignore[arg-type]
    await registration.start()
    return registration, transport


async def test_a_late_renewal_is_asked_again_at_once_and_stays_active() -> None:
    session = ScriptedSession()
    registration, _ = await registered(session)
    await settle(lambda: len(session.asked) == 1)
    assert session.asked[0][2] == pytest.approx(TTL / 6)  # the deadline: half an interval
    session.outcomes.put_nowait(late())
    await settle(lambda: len(session.asked) == 2)
    assert session.waits == ["grid"]  # asked again with no wait, not on the grid
    assert registration.state is RegistrationState.ACTIVE
    session.outcomes.put_nowait(9)
    await settle(lambda: len(session.asked) == 3)
    assert session.waits == ["grid", "grid"]  # answered: back on the grid
    await registration.detach()


async def test_late_renewals_for_two_intervals_suspend_it_until_one_is_answered() -> None:
    session = ScriptedSession()
    registration, _ = await registered(session)
    await settle(lambda: len(session.asked) == 1)
    session.clock.now += 2 * TTL / 3  # its last answered renewal is two intervals old
    session.outcomes.put_nowait(late())
    await settle(lambda: registration.state is RegistrationState.SUSPENDED)
    session.outcomes.put_nowait(9)
    await settle(lambda: registration.state is RegistrationState.ACTIVE)
    await registration.detach()


async def test_a_failed_renewal_suspends_and_waits_for_the_sessions_retry_point() -> None:
    session = ScriptedSession()
    registration, _ = await registered(session)
    await settle(lambda: len(session.asked) == 1)
    session.outcomes.put_nowait(RegistryUnavailableError(StatusCode.UNAVAILABLE, "gone"))
    await settle(lambda: len(session.asked) == 2)
    assert registration.state is RegistrationState.SUSPENDED
    assert session.waits == ["grid", "retry"]
    session.outcomes.put_nowait(9)
    await settle(lambda: registration.state is RegistrationState.ACTIVE)
    await registration.detach()


async def test_registrations_of_a_broken_stream_retry_in_one_message() -> None:
    """Not one message each: they meet at the session's retry point and go out together."""
    transport = FakeTransport()
    session = KeepAliveSession(transport, clock=FakeClock(), phase=0.0)  # type: ignore[arg-type]
    registrations = [
        Registration(transport, session, node(name), TTL, None)  # type: ignore[arg-type]
        for name in ("a", "b", "c")
    ]
    for registration in registrations:
        await registration.start()
    await settle(lambda: len(transport.sleeping) == 3)  # each on the grid
    transport.release_sleeps()
    await settle(lambda: bool(transport.calls) and bool(transport.calls[0].written))
    assert transport.calls[0].keys_written() == [["a", "b", "c"]]
    transport.calls[0].fail()
    await settle(lambda: all(r.state is RegistrationState.SUSPENDED for r in registrations))
    await settle(lambda: len(transport.sleeping) == 1)  # one retry point for the three
    transport.release_sleeps()
    await settle(lambda: len(transport.calls) == 2 and bool(transport.calls[1].written))
    assert transport.calls[1].keys_written() == [["a", "b", "c"]]
    transport.calls[1].answer(batch(*(ok(r.key) for r in registrations)))
    await settle(lambda: all(r.state is RegistrationState.ACTIVE for r in registrations))
    for registration in registrations:
        await registration.detach()
    await session.close()


def overloaded(pushback_ms: int | None) -> grpc.aio.AioRpcError:
    trailing = (("grpc-retry-pushback-ms", str(pushback_ms)),) if pushback_ms is not None else ()
    return rpc_error(grpc.StatusCode.RESOURCE_EXHAUSTED, "overloaded; retry later", trailing)


async def test_a_register_refused_as_overloaded_is_sent_again_after_each_pushback() -> None:
    slept: list[float] = []

    async def record(seconds: float) -> None:
        slept.append(seconds)

    transport = FakeTransport(ClientConfig(sleep=record))
    transport.register_steps = [overloaded(200), overloaded(300), None]
    registration = Registration(transport, ScriptedSession(), node("a"), TTL, None)  # type: ignore[arg-type]
    await registration.start()
    assert slept == [0.2, 0.3]
    assert registration.state is RegistrationState.ACTIVE
    # The same Register each time: one idempotency key.
    assert len({request.idempotency_key for request in transport.registers}) == 1
    await registration.detach()


async def test_a_register_refused_for_longer_than_the_clients_patience_raises_the_pushback() -> (
    None
):
    async def no_wait(_: float) -> None:
        return None

    transport = FakeTransport(ClientConfig(sleep=no_wait, register_overload_wait_seconds=1.0))
    transport.register_steps = [overloaded(600), overloaded(600), None]
    registration = Registration(transport, ScriptedSession(), node("a"), TTL, None)  # type: ignore[arg-type]
    with pytest.raises(ResourceExhaustedError) as refused:
        await registration.start()
    assert refused.value.retry_after_seconds == pytest.approx(0.6)
    assert len(transport.registers) == 2


async def test_a_limit_without_a_pushback_is_raised_at_once() -> None:
    transport = FakeTransport()
    transport.register_steps = [overloaded(None)]
    registration = Registration(transport, ScriptedSession(), node("a"), TTL, None)  # type: ignore[arg-type]
    with pytest.raises(ResourceExhaustedError):
        await registration.start()
    assert len(transport.registers) == 1


async def test_re_registering_waits_out_refusals_however_long_they_last() -> None:
    slept: list[float] = []

    async def record(seconds: float) -> None:
        slept.append(seconds)

    transport = FakeTransport(ClientConfig(sleep=record, register_overload_wait_seconds=0.0))
    registration = Registration(transport, ScriptedSession(), node("a"), TTL, None)  # type: ignore[arg-type]
    transport.register_steps = [overloaded(5_000)] * 30 + [None]
    await registration._reregister()
    assert slept == [5.0] * 30 and math.fsum(slept) == 150.0
    assert registration.reregistrations == 1


async def test_registers_go_in_the_clients_session_and_detach_moves_off_its_lease() -> None:
    """A registration on its session's shared lease (D73) is moved to a lease of its own before
    it is left to its TTL: the client's other registrations keep renewing the session's."""
    session = ScriptedSession()
    registration, transport = await registered(session)
    (first,) = transport.registers
    assert first.session == "scripted-session"
    token = await registration.detach()
    moved = transport.registers[-1]
    assert (moved.session, moved.token) == ("", token)
    assert registration.state is RegistrationState.CLOSED


async def test_detach_of_a_registration_with_a_lease_of_its_own_sends_nothing() -> None:
    async def no_wait(_: float) -> None:
        return None

    transport = FakeTransport(ClientConfig(sleep=no_wait))
    transport.knows_sessions = False  # a frontend from before shared session leases
    registration = Registration(transport, ScriptedSession(), node("a"), TTL, None)  # type: ignore[arg-type]
    await registration.start()
    await registration.detach()
    assert len(transport.registers) == 1
