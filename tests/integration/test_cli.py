"""The `noderegistry` command, run as a subprocess against a real frontend."""

from __future__ import annotations

import asyncio
import json
import signal
import sys

import pytest
from noderegistry.v1 import registry_pb2 as pb

from tests.support.api import key_of, node, node_ids, register

pytestmark = pytest.mark.integration


async def run_cli(*args: str, timeout: float = 30) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "registry_cli",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(timeout):
        out, err = await process.communicate()
    return process.returncode or 0, out.decode(), err.decode()


async def start_cli(*args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "registry_cli",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def read_line(process: asyncio.subprocess.Process, timeout: float = 15) -> str:
    assert process.stdout is not None
    async with asyncio.timeout(timeout):
        return (await process.stdout.readline()).decode().rstrip("\n")


async def stop(process: asyncio.subprocess.Process) -> tuple[int, str]:
    process.send_signal(signal.SIGINT)
    async with asyncio.timeout(20):
        out, err = await process.communicate()
    return process.returncode or 0, out.decode() + err.decode()


async def test_nodes_prints_a_table_and_json(start_frontend, connect):
    frontend = await start_frontend()
    stub = connect(frontend)
    await register(stub, node("d1", zone="a"))
    await register(stub, node("s1", "session", "dc2"))

    code, out, _ = await run_cli("nodes", "--target", frontend.address)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == [
        "DATACENTER",
        "TYPE",
        "ID",
        "ADDRESS",
        "STATUS",
        "INCARNATION",
        "METADATA",
    ]
    assert lines[1].split() == ["dc1", "data", "d1", "d1.example:7000", "UP", "1", "zone=a"]
    assert lines[2].split()[:3] == ["dc2", "session", "s1"]
    assert lines[3].startswith("2 node(s) at revision ")

    code, out, _ = await run_cli(
        "nodes", "--target", frontend.address, "--json", "--type", "session"
    )
    listing = json.loads(out)
    assert [n["id"] for n in listing["datacenters"]["dc2"]] == ["s1"]
    assert list(listing["datacenters"]) == ["dc2"]


async def test_register_keeps_alive_until_ctrl_c_then_deregisters(start_frontend, connect):
    frontend = await start_frontend()
    stub = connect(frontend)
    process = await start_cli(
        "register",
        "--target",
        frontend.address,
        "--id",
        "cli1",
        "--type",
        "data",
        "--datacenter",
        "dc1",
        "--address",
        "10.1.1.1:80",
        "--metadata",
        "role=test",
        "--ttl",
        "3",
    )
    first = await read_line(process)
    assert first.startswith("registered dc1/data/cli1 at 10.1.1.1:80 (incarnation 1, TTL 3s)")
    assert "cli1" in await node_ids(stub)
    code, output = await stop(process)
    assert code == 0, output
    assert "deregistered dc1/data/cli1" in output
    assert "cli1" not in await node_ids(stub)


async def test_watch_prints_changes_as_json_lines(start_frontend, connect):
    frontend = await start_frontend()
    stub = connect(frontend)
    await register(stub, node("early"))
    process = await start_cli("watch", "--target", frontend.address, "--json")
    assert json.loads(await read_line(process))["node"]["id"] == "early"
    late = await register(stub, node("late"))
    added = json.loads(await read_line(process))
    assert (added["type"], added["node"]["id"], added["revision"]) == (
        "ADDED",
        "late",
        late.revision,
    )
    await stub.Deregister(pb.DeregisterRequest(key=key_of(late.node), token=late.token))
    removed = json.loads(await read_line(process))
    assert (removed["type"], removed["reason"]) == ("REMOVED", "DEREGISTERED")
    code, _ = await stop(process)
    assert code == 0


async def test_health_and_errors_a_person_can_act_on(start_frontend):
    frontend = await start_frontend()
    code, out, _ = await run_cli("health", "--target", frontend.address)
    assert (code, out.strip()) == (0, f"{frontend.address} SERVING")

    code, out, err = await run_cli("nodes", "--target", "127.0.0.1:1")
    assert code == 1 and out == ""
    assert err.startswith("error: UNAVAILABLE: no registry frontend answered (127.0.0.1:1)")
    assert "Traceback" not in err

    code, _, err = await run_cli(
        "register",
        "--target",
        frontend.address,
        "--id",
        "Bad!",
        "--type",
        "data",
        "--datacenter",
        "dc1",
        "--address",
        "h:1",
    )
    assert code == 1
    assert err.startswith("error: INVALID_ARGUMENT: id 'Bad!' must match")

    code, _, err = await run_cli("health", "--target", "127.0.0.1:1")
    assert code == 1 and err.startswith("error: cannot check 127.0.0.1:1: UNAVAILABLE")


async def test_register_with_a_negative_ttl_is_one_error_line_before_any_call():
    # Nothing listens on the target: the SDK refuses the TTL before it would find that out.
    args = ("--type", "data", "--datacenter", "dc1", "--address", "h:1", "--ttl", "-1")
    code, out, err = await run_cli("register", "--target", "127.0.0.1:1", "--id", "n1", *args)
    assert (code, out) == (1, "")
    assert err.startswith("error: INVALID_ARGUMENT: ttl_seconds must be from 0")
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
