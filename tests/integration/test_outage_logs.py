"""Through an etcd outage, each retry loop says so once, not once per retry (issue 11,
problem 9: the evictor logged about ten warnings a second; decision D44)."""

from __future__ import annotations

import asyncio
import collections
import logging

import pytest

from tests.support.waiting import eventually

pytestmark = pytest.mark.integration
OUTAGE_SECONDS = 8.0


async def test_every_retry_loop_logs_an_outage_once_and_its_end_once(
    own_etcd, start_frontend, caplog
):
    frontend = await start_frontend(own_etcd.endpoint, evictor_poll_seconds=0.1)
    await eventually(lambda: frontend.evictor.status.leader, message="leads eviction")
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="registry_service"):
        own_etcd.stop()
        await asyncio.sleep(OUTAGE_SECONDS)  # the fault itself: etcd down this long
        warnings = collections.Counter(
            record.name for record in caplog.records if record.levelno >= logging.WARNING
        )
        own_etcd.start()
        await asyncio.to_thread(own_etcd.wait_ready)
        await eventually(lambda: frontend.client.watcher.connected, timeout=20, message="back")
        await eventually(lambda: frontend.evictor.status.leader, timeout=20, message="leads")
    # Before (D44): 42 lines: evictor 21 (one per 0.1 s poll), watch 11, lease stream 10.
    assert warnings["registry_service.core.evictor"] <= 2, warnings
    for loop in ("watch", "lease"):
        assert warnings[f"registry_service.store.etcd_client.{loop}"] <= 2, warnings
    assert sum(warnings.values()) <= 8, warnings
    recovered = [r.getMessage() for r in caplog.records if "working again after" in r.getMessage()]
    assert any(message.startswith("etcd watch: working again") for message in recovered)
