"""Refused Registers as the capacity row counts them: by the frontend's own metric when it has one
(an SDK that waits out RESOURCE_EXHAUSTED inside register() hides refusals from the clients), else
by what the clients were told; and the holder clients' SDK settings."""

from __future__ import annotations

import dataclasses

import pytest

from bench.capacity import Step
from bench.health import ADMISSION_REFUSED, Health, HealthWindow, totals
from bench.holders import client_config
from bench.holding import Renewals
from client_sdk import ClientConfig

PAGE = """\
# HELP noderegistry_admission_refused_total Calls refused as overloaded.
# TYPE noderegistry_admission_refused_total counter
noderegistry_admission_refused_total{call="Register"} 7.0
noderegistry_admission_refused_total{call="read"} 40.0
# HELP noderegistry_etcd_request_errors_total Failed etcd requests.
# TYPE noderegistry_etcd_request_errors_total counter
noderegistry_etcd_request_errors_total{method="put"} 2.0
noderegistry_etcd_request_errors_total{method="txn"} 1.0
"""
NAMES = ("noderegistry_etcd_request_errors_total", ADMISSION_REFUSED)


def test_the_refused_registers_are_read_apart_from_the_refused_reads():
    assert totals(PAGE, NAMES) == {
        "noderegistry_etcd_request_errors_total": 3.0,
        ADMISSION_REFUSED: 7.0,
    }


def test_a_frontend_without_admission_control_has_no_refusal_count():
    page = PAGE.split("# HELP noderegistry_etcd")[1]
    assert totals("# HELP noderegistry_etcd" + page, NAMES) == {
        "noderegistry_etcd_request_errors_total": 3.0
    }


def window(before: dict[str, float], after: dict[str, float]) -> HealthWindow:
    pages = iter([before, after])
    health = HealthWindow("127.0.0.1:1", "http://127.0.0.1:1")

    async def now() -> dict[str, float]:
        return next(pages)

    health._now = now  # type: ignore[method-assign]
    return health


async def test_a_window_counts_the_registers_refused_in_it():
    health = window({ADMISSION_REFUSED: 3.0}, {ADMISSION_REFUSED: 10.0})
    await health.start()
    assert (await health.end()).registers_refused == 7


async def test_a_window_over_a_frontend_without_the_metric_says_it_has_no_count():
    health = window({}, {"noderegistry_etcd_request_errors_total": 1.0})
    await health.start()
    ended = await health.end()
    assert ended.registers_refused is None
    assert ended.frontend_etcd_errors == 1


def step(clients_refused: int, frontend_refused: int | None) -> Step:
    return Step(
        target=100,
        leases=50,
        processes=1,
        added={"asked": 100, "registered": 50, "refused": clients_refused, "unregistered": 50},
        renewals=Renewals(held=50, owed=100.0, on_time=100.0),
        expired=0,
        suspect=0,
        removed=0,
        own_keys=0,
        cores={"frontend": 1.0, "etcd": 0.5, "clients": 0.2},
        health=Health(0.0, 0.0, 0, 0, 0, registers_refused=frontend_refused),
    )


def test_past_capacity_the_frontends_count_of_refusals_is_what_counts():
    # The clients saw no refusal (their SDK waited them out), the frontend refused 12: the step
    # broke gracefully, and says so.
    hidden = step(clients_refused=0, frontend_refused=12)
    assert (hidden.held, hidden.refused, hidden.graceful) == (False, 12, True)
    assert "12 Registers refused" in hidden.describe()


@pytest.mark.parametrize(("clients", "graceful"), [(5, True), (0, False)])
def test_without_the_metric_the_clients_count_of_refusals_is_what_counts(clients, graceful):
    told = step(clients_refused=clients, frontend_refused=None)
    assert (told.refused, told.graceful) == (clients, graceful)


def test_the_holders_sdk_waits_out_no_refusal_where_it_could():
    assert client_config(ClientConfig).register_overload_wait_seconds == 0  # this SDK has it (D70)


def test_an_sdk_without_the_setting_gets_its_defaults():
    @dataclasses.dataclass(frozen=True)
    class Older:  # an SDK from before D70: no register_overload_wait_seconds
        call_timeout_seconds: float = 5.0

    assert client_config(Older) == Older()  # type: ignore[arg-type]
