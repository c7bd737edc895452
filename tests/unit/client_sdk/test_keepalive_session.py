"""The SDK's KeepAlive session does not amplify an overload (D70): one late answer never tears
down the stream, a late OK answer still renews, a stream is abandoned only when it is dead, and
the session's retries go out together."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from client_sdk import RegistryUnavailableError, StatusCode
from client_sdk._errors import NodeNotFoundError
from client_sdk._keepalive import KeepAliveSession, LateAnswerError
from client_sdk._models import NodeKey
from tests.unit.client_sdk.keepalive_fakes import (
    FakeClock,
    FakeTransport,
    batch,
    ok,
    refused,
    settle,
)

A = NodeKey("dc1", "data", "a")
B = NodeKey("dc1", "data", "b")
DEADLINE = 0.02  # real seconds: the renewal's own deadline; the stream's silence is the clock's


def session_with_clock() -> tuple[KeepAliveSession, FakeTransport, FakeClock]:
    clock = FakeClock()
    transport = FakeTransport()
    return KeepAliveSession(transport, clock=clock, phase=0.0), transport, clock  # type: ignore[arg-type]


async def test_a_late_answer_keeps_the_stream_and_its_ok_answers_the_retry() -> None:
    session, transport, _ = session_with_clock()
    with pytest.raises(LateAnswerError) as late:
        await session.renew(A, "t", DEADLINE)
    assert late.value.code is StatusCode.DEADLINE_EXCEEDED
    (call,) = transport.calls
    assert not call.cancelled and transport.failed_over == []
    retry = asyncio.create_task(session.renew(A, "t", 5.0))
    await settle(lambda: len(call.written) == 2)
    call.answer(batch(ok(A, ttl=8)))  # the first request's answer, late
    assert await retry == 8  # the first request's late OK renewed the lease: the retry has it
    call.answer(batch(ok(A, ttl=7)))  # the retry's own answer, nobody waits for it any more
    await settle(lambda: not session._asked)
    assert session.streams_opened == 1
    await session.close()


async def test_a_late_error_answer_does_not_answer_the_retry() -> None:
    session, transport, _ = session_with_clock()
    with pytest.raises(LateAnswerError):
        await session.renew(A, "t", DEADLINE)
    (call,) = transport.calls
    retry = asyncio.create_task(session.renew(A, "t", 5.0))
    await settle(lambda: len(call.written) == 2)
    call.answer(batch(refused(A, grpc.StatusCode.UNAVAILABLE)))
    await settle(lambda: len(session._asked[A]) == 1)
    assert not retry.done()
    call.answer(batch(ok(A, ttl=6)))
    assert await retry == 6
    await session.close()


async def test_a_late_ok_answer_for_another_token_does_not_answer_the_retry() -> None:
    """The registration was made anew meanwhile: the old token's OK says nothing of the new."""
    session, transport, _ = session_with_clock()
    with pytest.raises(LateAnswerError):
        await session.renew(A, "old", DEADLINE)
    (call,) = transport.calls
    retry = asyncio.create_task(session.renew(A, "new", 5.0))
    await settle(lambda: len(call.written) == 2)
    call.answer(batch(ok(A)))
    await settle(lambda: len(session._asked[A]) == 1)
    assert not retry.done()
    call.answer(batch(refused(A, grpc.StatusCode.NOT_FOUND)))
    with pytest.raises(NodeNotFoundError):
        await retry
    await session.close()


async def test_a_stream_silent_for_two_deadlines_is_abandoned_and_the_next_renewal_opens_one() -> (
    None
):
    session, transport, clock = session_with_clock()
    waiting = asyncio.create_task(session.renew(A, "t", DEADLINE))
    await settle(lambda: bool(transport.calls) and bool(transport.calls[0].written))
    clock.now += 2 * DEADLINE + 0.001  # nothing came back on the stream for two deadlines
    with pytest.raises(RegistryUnavailableError) as dead:
        await waiting
    assert not isinstance(dead.value, LateAnswerError)
    assert "nothing came back on the stream" in dead.value.message
    first = transport.calls[0]
    assert first.cancelled and transport.failed_over == ["frontend-a"]
    renewal = asyncio.create_task(session.renew(A, "t", 5.0))
    await settle(lambda: len(transport.calls) == 2 and bool(transport.calls[1].written))
    transport.calls[1].answer(batch(ok(A)))
    assert await renewal == 9
    assert session.streams_opened == 2
    await session.close()


async def test_answers_for_other_registrations_keep_a_slow_stream_alive() -> None:
    session, transport, clock = session_with_clock()
    slow = asyncio.create_task(session.renew(A, "t", DEADLINE))
    other = asyncio.create_task(session.renew(B, "t", 5.0))
    await settle(lambda: bool(transport.calls) and bool(transport.calls[0].written))
    (call,) = transport.calls
    clock.now += 2 * DEADLINE + 0.001
    call.answer(batch(ok(B)))  # the stream answers something: alive
    assert await other == 9
    with pytest.raises(LateAnswerError):
        await slow
    assert not call.cancelled and session.streams_opened == 1
    await session.close()


async def test_a_failed_stream_fails_every_waiting_renewal_and_fails_over() -> None:
    session, transport, _ = session_with_clock()
    waiting = [asyncio.create_task(session.renew(key, "t", 5.0)) for key in (A, B)]
    await settle(lambda: bool(transport.calls) and bool(transport.calls[0].written))
    transport.calls[0].fail()
    for task in waiting:
        with pytest.raises(RegistryUnavailableError) as failed:
            await task
        assert failed.value.code is StatusCode.UNAVAILABLE
    assert transport.failed_over == ["frontend-a"]
    await session.close()


async def test_renewals_asked_in_one_step_go_out_in_one_message() -> None:
    session, transport, _ = session_with_clock()
    waiting = [asyncio.create_task(session.renew(key, "t", 5.0)) for key in (A, B)]
    await settle(lambda: bool(transport.calls) and bool(transport.calls[0].written))
    (call,) = transport.calls
    assert call.keys_written() == [["a", "b"]]
    call.answer(batch(ok(A), ok(B)))
    assert await asyncio.gather(*waiting) == [9, 9]
    await session.close()


async def test_registrations_that_failed_share_one_retry_point() -> None:
    session, transport, _ = session_with_clock()
    waiters = [asyncio.create_task(session.retry_point(1.0)) for _ in range(3)]
    await settle(lambda: len(transport.slept) == 1)
    assert len(transport.slept) == 1  # one sleep for all three
    assert 0.0 < transport.slept[0] <= transport.config.retry_initial_seconds
    transport.release_sleeps()
    await asyncio.gather(*waiters)
    # The next failure waits longer (the session's backoff doubles), capped by the caller.
    later = asyncio.create_task(session.retry_point(0.15))
    await settle(lambda: len(transport.slept) == 2)
    assert transport.slept[1] <= 0.15
    transport.release_sleeps()
    await later
    await session.close()


async def test_an_ok_renewal_resets_the_sessions_retry_backoff() -> None:
    session, transport, _ = session_with_clock()
    for _ in range(4):
        waiter = asyncio.create_task(session.retry_point(60.0))
        await settle(lambda: bool(transport.sleeping))
        transport.release_sleeps()
        await waiter
    assert transport.slept[-1] > transport.config.retry_initial_seconds
    renewal = asyncio.create_task(session.renew(A, "t", 5.0))
    await settle(lambda: bool(transport.calls) and bool(transport.calls[0].written))
    transport.calls[0].answer(batch(ok(A)))
    await renewal
    waiter = asyncio.create_task(session.retry_point(60.0))
    await settle(lambda: bool(transport.sleeping))
    assert transport.slept[-1] <= transport.config.retry_initial_seconds
    transport.release_sleeps()
    await waiter
    await session.close()


def test_each_client_renews_on_a_grid_of_its_own_phase() -> None:
    clock = FakeClock()
    transport = FakeTransport()
    early = KeepAliveSession(transport, clock=clock, phase=0.0)  # type: ignore[arg-type]
    late = KeepAliveSession(transport, clock=clock, phase=0.5)  # type: ignore[arg-type]
    clock.now += 10.0
    first, second = early.next_renewal_in(3.0), late.next_renewal_in(3.0)
    assert 0.75 <= first <= 3.75 and 0.75 <= second <= 3.75
    assert abs(((second - first) % 3.0) - 1.5) < 1e-9  # half an interval apart
    clock.now += first  # registrations of one client renew together, a whole interval later
    assert early.next_renewal_in(3.0) == pytest.approx(3.0)
