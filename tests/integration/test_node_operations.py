"""Operators act on live nodes (docs/design.md §9): maintenance, drain, clear and evict, through the
`noderegistry admin` CLI, with bearer tokens on, across two frontends (one with two workers).

Plan:
1. A (in process) and B (`serve --workers 2`) share etcd and a tokens file; the node's owner
   registers through A (SDK), one watch follows A, one B.
2. `admin node maintenance` (through B's host port): both watches see it OUT_OF_SERVICE; the
   owner's update keeps it; `drain` makes it DRAINING; `clear` gives back the owner's UP.
3. `admin node evict --hold`: both watches see REMOVED (EVICTED); another Register of the id is
   refused (FAILED_PRECONDITION naming the operator); the owner's registration is HELD, then
   registers anew after the hold (incarnation 2).
4. The node's audit and the operator audit name the operator (its token's name).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from client_sdk import (
    ClientConfig,
    EventType,
    Node,
    NodeKey,
    NodeStatus,
    RegistrationState,
    RegistryClient,
    RemovalReason,
)
from registry_service import domain
from tests.support.cli import run_cli
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration
OPS, FLEET = "ops-secret-1", "fleet-secret-2"


def tokens_file(directory: Path) -> str:
    path = directory / "tokens"
    path.write_text(f"ops admin,register,watch {OPS}\nfleet register,watch {FLEET}\n")
    return str(path)


def client_config(token: str) -> ClientConfig:
    return ClientConfig(
        call_timeout_seconds=3,
        retry_initial_seconds=0.05,
        retry_max_seconds=0.5,
        bearer_token=token,
    )


async def admin(*args: str, endpoint: str) -> dict:
    status, out, err = await run_cli(
        "admin", *args, "--admin-endpoints", endpoint, "--token", OPS, "-o", "json"
    )
    assert status == 0, err
    return json.loads(out)


def status_of(node_id: str):
    def read(nodes) -> NodeStatus | None:
        return next((n.status for n in nodes if n.id == node_id), None)

    return read


async def test_maintenance_and_evict_reach_watchers_of_both_frontends_and_the_audit(
    etcd, tmp_path, start_frontend, spawn_frontend
):
    tokens = tokens_file(tmp_path)
    a = await start_frontend(auth_tokens_file=tokens)
    b = await spawn_frontend(etcd.endpoint, workers=2, auth_tokens_file=tokens)
    a_admin = f"http://127.0.0.1:{a.admin.port}"
    b_admin = b.ready_line.split("admin ")[1].rstrip(")\n")
    key = NodeKey("dc1", "data", "n1")
    async with (
        RegistryClient(a.address, config=client_config(FLEET)) as owner,
        RegistryClient(a.address, config=client_config(FLEET)) as on_a,
        RegistryClient(b.address, config=client_config(FLEET)) as on_b,
    ):
        registration = await owner.register(Node("n1", "data", "dc1", "n1:1"), ttl_seconds=3)
        watches = [await on_a.watch_nodes(), await on_b.watch_nodes()]
        events = [watch.events() for watch in watches]
        read = status_of("n1")

        done = await admin(
            "node", "maintenance", "dc1/data/n1", "--reason", "disk", endpoint=b_admin
        )
        assert done["status"] == "OUT_OF_SERVICE" and done["operator"] == "token:ops"
        for watch in watches:
            await watch.wait_for(lambda nodes: read(nodes) is NodeStatus.OUT_OF_SERVICE, 10)
            assert not watch.current().available
        await registration.update(metadata={"rack": "r2"})  # the owner's update keeps it
        assert registration.node.status is NodeStatus.OUT_OF_SERVICE
        for watch in watches:
            await watch.wait_for(
                lambda nodes: any(n.metadata.get("rack") == "r2" for n in nodes), 10
            )
            assert read(watch.current()) is NodeStatus.OUT_OF_SERVICE

        await admin("node", "drain", "dc1/data/n1", endpoint=a_admin)
        for watch in watches:
            await watch.wait_for(lambda nodes: read(nodes) is NodeStatus.DRAINING, 10)
        shown = await admin("node", "show", "dc1/data/n1", endpoint=a_admin)
        assert shown["override"]["status"] == "DRAINING"
        assert shown["override"]["owner_status"] == "UP"
        await admin("node", "clear", "dc1/data/n1", endpoint=a_admin)
        for watch in watches:
            await watch.wait_for(lambda nodes: read(nodes) is NodeStatus.UP, 10)

        states = registration.state_changes()
        await admin("node", "evict", "dc1/data/n1", "--hold", "6", endpoint=a_admin)
        for stream in events:
            async for event in stream:
                if event.type is EventType.REMOVED and event.node.id == "n1":
                    assert event.reason is RemovalReason.EVICTED
                    break
        status, _, err = await run_cli(
            "register",
            *("--id", "n1", "--type", "data", "--datacenter", "dc1", "--address", "x:1"),
            *("--endpoints", b.address, "--token", FLEET),
        )
        assert status == 1
        assert "FAILED_PRECONDITION" in err and "evicted by token:ops" in err, err
        seen = []
        async for state in states:
            seen.append(state)
            if state is RegistrationState.ACTIVE and RegistrationState.HELD in seen:
                break
        assert seen[:2] == [RegistrationState.LOST, RegistrationState.HELD]
        assert registration.incarnation == 2
        for watch in watches:
            await watch.wait_for(lambda nodes: read(nodes) is NodeStatus.UP, 10)

        node_audit = await admin("audit", "dc1/data/n1", endpoint=b_admin)
        by_operator = [(e["cause"], e["operator"]) for e in node_audit["entries"] if e["operator"]]
        assert by_operator == [
            ("OPERATOR_OUT_OF_SERVICE", "token:ops"),
            ("OPERATOR_DRAINING", "token:ops"),
            ("OPERATOR_CLEARED", "token:ops"),
            ("OPERATOR_EVICTED", "token:ops"),
        ]
        actions = (await admin("audit", endpoint=b_admin))["operator_actions"]
        assert [(e["action"], e["target"], e["operator"]) for e in actions] == [
            ("node.out_of_service", str(key), "token:ops"),
            ("node.draining", str(key), "token:ops"),
            ("node.clear", str(key), "token:ops"),
            ("node.evict", str(key), "token:ops"),
        ]
        assert actions[0]["detail"] == "disk" and "held out for 6s" in actions[-1]["detail"]
        for stream in events:
            stream.close()


async def test_an_evicted_node_without_a_hold_registers_again_at_once(start_frontend):
    frontend = await start_frontend()
    async with RegistryClient(frontend.address, config=client_config("")) as client:
        registration = await client.register(Node("n2", "data", "dc1", "n2:1"), ttl_seconds=3)
        await frontend.operations.evict(domain.NodeKey("dc1", "data", "n2"), "test")
        await eventually(lambda: registration.incarnation == 2, timeout=10, message="again")
        assert registration.state is RegistrationState.ACTIVE
        assert registration.reregistrations == 1
