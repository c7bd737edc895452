"""Renewals as the wire shows them, in a client process that uses the SDK: when each registration's
renewal went out on a KeepAlive stream and when its answer came back, whatever the SDK does
inside (batches, retries, new streams). A gRPC client interceptor on the SDK's channels reads the
requests and answers; nothing in the SDK is touched.

A renewal is **on time** when its answer is OK and came within TTL/3 of its request (the renewal
period: the SDK asks again after it). An on-time renewal sent at t keeps its registration
*covered* until t + 1.25 periods (a quarter period of slack for a client's scheduling). The share
of renewals on time over a window is the covered share of the window summed over the
registrations held since it began: a registration renewed on time every period is covered
throughout whatever the phase of its renewals against the window (a client renews all its
registrations at the same moments, so counting answers inside the window would count a whole
client in or out at its edges), one missed period leaves an uncovered gap, and retries cannot buy
back a silence (coverage starts when they are sent). Expressed in renewals: covered share x the
renewals owed (one per period per registration).
"""

from __future__ import annotations

import bisect
import collections
import time
from array import array
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
import grpc.aio
from noderegistry.v1 import registry_pb2 as pb

ON_TIME, LATE, REFUSED = 0, 1, 2
SLACK = 0.25  # of a period: how much later than one period after it a renewal may be sent


def covered_length(intervals: list[tuple[float, float]]) -> float:
    """The length of the union of [start, end] intervals."""
    total, reach = 0.0, float("-inf")
    for start, end in sorted(intervals):
        if end <= reach:
            continue
        total += end - max(start, reach)
        reach = end
    return total


class RenewalLog:
    """Every renewal answer of the registrations of one process, in the order they came."""

    def __init__(self, period_seconds: float) -> None:
        self.period = period_seconds
        self.index: dict[str, int] = {}
        self.registered_at: list[float] = []
        self.answered_at = array("d")
        self.asked_at = array("d")
        self.answer_key = array("l")
        self.answer_kind = array("b")
        self.transitions: list[tuple[float, int, str]] = []  # (when, key, state): not ACTIVE

    def registered(self, node_id: str, at: float) -> None:
        if node_id not in self.index:
            self.index[node_id] = len(self.registered_at)
            self.registered_at.append(at)

    def answered(self, node_id: str, code: int, asked: float, at: float) -> None:
        """The answer, at `at`, to the renewal of `node_id` sent at `asked`."""
        key = self.index.get(node_id)
        if key is None:
            return
        kind = REFUSED if code else ON_TIME if at - asked <= self.period else LATE
        self.answered_at.append(at)
        self.asked_at.append(asked)
        self.answer_key.append(key)
        self.answer_kind.append(kind)

    def state(self, node_id: str, state: str, at: float) -> None:
        key = self.index.get(node_id)
        if key is not None and state != "ACTIVE":
            self.transitions.append((at, key, state))

    def _held(self, since: float) -> int:
        return bisect.bisect_right(self.registered_at, since)

    def _answers(self, t0: float, t1: float) -> range:
        return range(
            bisect.bisect_left(self.answered_at, t0), bisect.bisect_right(self.answered_at, t1)
        )

    def report(self, t0: float, t1: float) -> dict[str, float]:
        """Renewals sent within [t0, t1) by the registrations held since t0, and their
        coverage of the window."""
        held = self._held(t0)
        reach = self.period * (1 + SLACK)
        kinds = [0, 0, 0]
        answered: set[int] = set()
        refused: set[int] = set()
        covering: dict[int, list[tuple[float, float]]] = collections.defaultdict(list)
        # An answer that matters was sent from t0 - reach on and came at most a period later.
        for i in self._answers(t0 - reach, t1 + self.period):
            key, asked, kind = self.answer_key[i], self.asked_at[i], self.answer_kind[i]
            if key >= held or asked >= t1:
                continue
            if kind == ON_TIME and asked + reach > t0:
                covering[key].append((max(asked, t0), min(asked + reach, t1)))
            if asked < t0:
                continue
            kinds[kind] += 1
            (refused if kind == REFUSED else answered).add(key)
        covered = sum(covered_length(intervals) for intervals in covering.values())
        owed = held * (t1 - t0) / self.period
        out_of_state = {key for when, key, _ in self.transitions if t0 <= when <= t1 and key < held}
        states = collections.Counter(
            state for when, key, state in self.transitions if t0 <= when <= t1 and key < held
        )
        return {
            "held": held,
            "owed": owed,
            "on_time": owed * covered / (held * (t1 - t0)) if held and t1 > t0 else 0.0,
            "late": kinds[LATE],
            "refused": kinds[REFUSED],
            "refused_registrations": len(refused),
            "unanswered_registrations": held - len(answered) if t1 - t0 >= self.period else 0,
            "registrations_not_active": len(out_of_state),
            "suspended_transitions": states["SUSPENDED"],
            "lost_transitions": states["LOST"],
        }

    def series(self, t0: float, t1: float, step: float) -> list[tuple[float, float]]:
        """(on time, owed) over windows one period long starting at t0, t0 + step, ... while
        they end by t1."""
        windows = []
        start = t0
        while start + self.period <= t1 + 1e-9:
            figures = self.report(start, start + self.period)
            windows.append((figures["on_time"], figures["owed"]))
            start += step
        return windows


def on_time_share(on_time: float, owed: float) -> float:
    return min(1.0, on_time / owed) if owed else 1.0


def _renewed_ids(request: pb.KeepAliveRequest) -> list[str]:
    if request.renewals:
        return [renewal.key.id for renewal in request.renewals]
    return [request.key.id] if request.key.id else []


def _answers(response: pb.KeepAliveResponse) -> list[tuple[str, int]]:
    if response.results:
        return [(result.key.id, result.code) for result in response.results]
    return [(response.key.id, response.code)] if response.key.id else []


class KeepAliveTap(grpc.aio.StreamStreamClientInterceptor):  # type: ignore[misc]
    """Reads every KeepAlive request and answer on a channel into a RenewalLog. Answers pair with
    requests per stream, in order; what a stream leaves unanswered when it ends is dropped (the
    SDK asks again, and the window's owed renewals count the silence)."""

    def __init__(self, log: RenewalLog) -> None:
        self._log = log

    async def intercept_stream_stream(
        self, continuation: Callable[..., Any], details: Any, request_iterator: Any
    ) -> Any:
        method = details.method.decode() if isinstance(details.method, bytes) else details.method
        if not method.endswith("/KeepAlive"):
            return await continuation(details, request_iterator)
        log = self._log
        pending: dict[str, collections.deque[float]] = collections.defaultdict(collections.deque)

        async def requests() -> AsyncIterator[pb.KeepAliveRequest]:
            async for request in request_iterator:
                now = time.monotonic()
                for node_id in _renewed_ids(request):
                    pending[node_id].append(now)
                yield request

        call = await continuation(details, requests())

        async def answers() -> AsyncIterator[pb.KeepAliveResponse]:
            async for response in call:
                now = time.monotonic()
                for node_id, code in _answers(response):
                    asked = pending.get(node_id)
                    if asked:
                        log.answered(node_id, code, asked.popleft(), now)
                yield response

        return answers()


def tap_sdk_channels(log: RenewalLog, *, own_connection: bool) -> None:
    """Makes every grpc.aio channel this process opens from now on (the SDK's) carry the tap;
    with `own_connection`, each channel its own TCP connection (gRPC shares one per target in a
    process otherwise): one registration per client means one connection per client."""
    original = grpc.aio.insecure_channel
    tap = KeepAliveTap(log)
    extra = [("grpc.use_local_subchannel_pool", 1)] if own_connection else []

    def tapped(
        target: str, options: Any = None, compression: Any = None, interceptors: Any = None
    ) -> grpc.aio.Channel:
        return original(
            target,
            options=[*(options or ()), *extra],
            compression=compression,
            interceptors=[*(interceptors or ()), tap],
        )

    grpc.aio.insecure_channel = tapped
