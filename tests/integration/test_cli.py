"""The installed `noderegistry` command against a real frontend (plaintext, no tokens; TLS and
tokens are in test_cli_secure.py)."""

from __future__ import annotations

import asyncio
import json

import pytest
from noderegistry.v1 import registry_pb2 as pb

from tests.support.api import key_of, node, node_ids, register
from tests.support.cli import interrupt, read_line, run_cli, running_cli
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration

REGISTER_ARGS = ("--type", "data", "--datacenter", "dc1", "--address", "10.1.1.1:80")


async def test_nodes_prints_a_table_and_json(start_frontend, connect):
    frontend = await start_frontend()
    stub = connect(frontend)
    await register(stub, node("d1", zone="a"))
    await register(stub, node("s1", "session", "dc2"))

    code, out, _ = await run_cli("nodes", "--endpoints", frontend.address)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == [
        "DATACENTER",
        "TYPE",
        "ID",
        "ADDRESS",
        "STATUS",
        "HEALTH",
        "INCARNATION",
        "METADATA",
    ]
    assert lines[1].split() == ["dc1", "data", "d1", "d1.example:7000", "UP", "-", "1", "zone=a"]
    assert lines[2].split()[:3] == ["dc2", "session", "s1"]
    assert lines[3].startswith("2 node(s) at revision ") and "STALE" not in lines[3]

    code, out, _ = await run_cli(
        "nodes", "--target", frontend.address, "-o", "json", "--type", "session"
    )
    listing = json.loads(out)
    assert (listing["count"], listing["consistency"], listing["stale"]) == (
        1,
        "LINEARIZABLE",
        False,
    )
    assert list(listing["datacenters"]) == ["dc2"]
    (s1,) = listing["datacenters"]["dc2"]["nodes"]
    assert (s1["id"], s1["type"], s1["status"], s1["incarnation"]) == ("s1", "session", "UP", 1)

    # A label selector on metadata: only d1 has zone=a.
    code, out, _ = await run_cli(
        "nodes", "--target", frontend.address, "-o", "json", "--selector", "zone in (a,b)"
    )
    assert code == 0 and list(json.loads(out)["datacenters"]) == ["dc1"]


async def test_register_keeps_alive_until_ctrl_c_then_deregisters(start_frontend, connect):
    frontend = await start_frontend()
    stub = connect(frontend)
    args = ("--id", "cli1", *REGISTER_ARGS, "--metadata", "role=test", "--ttl", "3")
    async with running_cli("register", "--endpoints", frontend.address, *args) as process:
        first = await read_line(process)
        assert first.startswith("registered dc1/data/cli1 at 10.1.1.1:80 (incarnation 1, TTL 3s)")
        assert "cli1" in await node_ids(stub)
        code, out, err = await interrupt(process)
    assert code == 0, err
    assert out.splitlines()[-1] == "deregistered dc1/data/cli1"
    assert "cli1" not in await node_ids(stub)


async def test_register_prints_json_lines(start_frontend, connect):
    frontend = await start_frontend()
    args = ("--id", "cli2", *REGISTER_ARGS, "-o", "json")
    async with running_cli("register", "--endpoints", frontend.address, *args) as process:
        registered = json.loads(await read_line(process))
        assert (registered["type"], registered["node"]["id"], registered["ttl_seconds"]) == (
            "REGISTERED",
            "cli2",
            10,
        )
        code, out, _ = await interrupt(process)
    assert code == 0
    assert json.loads(out.splitlines()[-1]) == {"type": "DEREGISTERED", "key": "dc1/data/cli2"}


async def test_watch_prints_changes_as_json_lines(start_frontend, connect):
    frontend = await start_frontend()
    stub = connect(frontend)
    await register(stub, node("early"))
    async with running_cli("watch", "--endpoints", frontend.address, "-o", "json") as process:
        first = json.loads(await read_line(process))
        assert (first["type"], first["node"]["id"]) == ("ADDED", "early")
        assert "reason" not in first  # only REMOVED events carry one
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
        code, _, _ = await interrupt(process)
    assert code == 0


async def test_nodes_and_watch_healthy_show_only_the_healthy_nodes(start_frontend, connect):
    frontend = await start_frontend()
    stub = connect(frontend)
    await register(stub, node("ok"))
    sick = await register(stub, node("sick"))
    failing, passing = node("sick"), node("sick")
    failing.health, passing.health = pb.HEALTH_FAILING, pb.HEALTH_PASSING  # its owner's report
    watch = ("watch", "--endpoints", frontend.address, "--healthy", "-o", "json")
    async with running_cli(*watch) as process:
        first = [json.loads(await read_line(process)) for _ in range(2)]
        assert sorted((e["type"], e["node"]["id"]) for e in first) == [
            ("ADDED", "ok"),
            ("ADDED", "sick"),
        ]
        await register(stub, failing, token=sick.token)
        removed = json.loads(await read_line(process))
        assert (removed["type"], removed["node"]["id"], removed["reason"]) == (
            "REMOVED",
            "sick",
            "UNHEALTHY",
        )
        code, out, _ = await run_cli(
            "nodes", "--endpoints", frontend.address, "--healthy", "-o", "json"
        )
        listed = json.loads(out)["datacenters"]["dc1"]["nodes"]
        assert code == 0 and [n["id"] for n in listed] == ["ok"]
        code, out, _ = await run_cli("nodes", "--endpoints", frontend.address, "-o", "json")
        everything = json.loads(out)["datacenters"]["dc1"]["nodes"]
        assert {n["id"]: n["health"] for n in everything} == {"ok": "UNCHECKED", "sick": "FAILING"}

        await register(stub, passing, token=sick.token)
        added = json.loads(await read_line(process))
        assert (added["type"], added["node"]["id"]) == ("ADDED", "sick")
        code, _, _ = await interrupt(process)
    assert code == 0


async def test_health_and_errors_a_person_can_act_on(start_frontend):
    frontend = await start_frontend()
    code, out, _ = await run_cli("health", "--endpoints", frontend.address)
    assert (code, out.strip()) == (0, f"{frontend.address} SERVING")

    code, out, err = await run_cli("nodes", "--endpoints", "127.0.0.1:1")
    assert code == 1 and out == ""
    assert err.startswith("error: UNAVAILABLE: no registry frontend answered (127.0.0.1:1)")
    assert len(err.splitlines()) == 1

    code, _, err = await run_cli(
        "register", "--endpoints", frontend.address, "--id", "Bad!", *REGISTER_ARGS
    )
    assert code == 1
    assert err.startswith("error: INVALID_ARGUMENT: id 'Bad!' must match")

    # Two endpoints, one down: health checks each, and fails.
    endpoints = f"{frontend.address},127.0.0.1:1"
    code, out, err = await run_cli("health", "--endpoints", endpoints)
    assert code == 1 and out.strip() == f"{frontend.address} SERVING"
    assert err.startswith("error: cannot check 127.0.0.1:1: UNAVAILABLE")
    code, out, _ = await run_cli("health", "--endpoints", endpoints, "-o", "json")
    report = json.loads(out)
    assert code == 1 and report["healthy"] is False
    assert [(e["endpoint"], e["status"]) for e in report["endpoints"]] == [
        (frontend.address, "SERVING"),
        ("127.0.0.1:1", None),
    ]
    assert report["endpoints"][1]["error"].startswith("UNAVAILABLE: ")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--ttl", "-1"), "error: noderegistry register: argument --ttl: must be a whole number"),
        (("--metadata", "novalue"), "error: noderegistry register: argument --metadata: takes"),
        (("--timeout", "0"), "error: --timeout: '0' is not a number of seconds > 0"),
    ],
)
async def test_a_bad_argument_is_one_usage_line_and_exit_2_before_any_call(args, message):
    # Nothing listens on the endpoint: the argument is refused before that would be found out.
    code, out, err = await run_cli(
        "register", "--endpoints", "127.0.0.1:1", "--id", "n1", *REGISTER_ARGS, *args
    )
    assert (code, out) == (2, "")
    assert err.startswith(message)
    assert "Traceback" not in err and len(err.splitlines()) == 1


async def test_a_frontend_that_never_answers_ends_in_one_line_naming_the_deadline():
    # A listener that accepts connections and never says anything: the call's deadline runs out.
    accepted: list[asyncio.StreamWriter] = []
    silent = await asyncio.start_server(
        lambda reader, writer: accepted.append(writer), "127.0.0.1", 0
    )
    host, port = silent.sockets[0].getsockname()[:2]
    try:
        for verb in (("nodes",), ("register", "--id", "n1", *REGISTER_ARGS)):
            code, out, err = await run_cli(*verb, "--endpoints", f"{host}:{port}", "--timeout", "1")
            assert (code, out) == (1, ""), err
            assert err.startswith(
                f"error: DEADLINE_EXCEEDED: Deadline Exceeded: no answer from frontend "
                f"{host}:{port} within 1s"
            ), err
            assert err.rstrip().endswith("(--timeout or NODEREGISTRY_TIMEOUT waits longer)")
            assert len(err.splitlines()) == 1
    finally:
        silent.close()
        for writer in accepted:  # closing the server leaves its connections open
            writer.close()
        await silent.wait_closed()


async def test_cached_nodes_and_watch_show_staleness_and_age_during_an_etcd_outage(
    own_etcd, start_frontend, connect
):
    # 1. A frontend on its own etcd, one node, a watch running.
    # 2. etcd stops: `nodes --cached` says STALE with the list's age (table and JSON); `nodes`
    #    and `register` fail in one line; the watch prints STALE lines whose age grows.
    # 3. etcd is back: the watch prints CURRENT.
    frontend = await start_frontend(own_etcd.endpoint)
    await register(connect(frontend), node("n1"), ttl=60)
    endpoint = ("--endpoints", frontend.address)
    async with running_cli("watch", *endpoint, "-o", "json") as watch:
        assert json.loads(await read_line(watch))["node"]["id"] == "n1"
        code, out, _ = await run_cli("nodes", *endpoint, "--cached")
        assert code == 0 and "; cached, " in out.splitlines()[-1]

        own_etcd.stop()

        async def stale_listing() -> dict[str, object] | None:
            _, out, _ = await run_cli("nodes", *endpoint, "--cached", "-o", "json")
            listing: dict[str, object] = json.loads(out)
            return listing if listing["stale"] else None

        listing = await eventually(stale_listing, timeout=30, message="a stale cached list")
        assert listing["consistency"] == "CACHED" and listing["count"] == 1
        assert isinstance(listing["age_seconds"], float) and listing["age_seconds"] > 0
        code, out, _ = await run_cli("nodes", *endpoint, "--cached")
        assert code == 0 and "n1" in out
        assert "; STALE: the frontend cannot reach etcd, this list is " in out.splitlines()[-1]

        # Reads that need etcd and writes fail in one line that says more than the code.
        for verb in (("nodes",), ("register", "--id", "n2", *REGISTER_ARGS)):
            code, out, err = await run_cli(*verb, *endpoint, "--timeout", "2")
            assert (code, out) == (1, ""), err
            assert err.startswith("error: ") and len(err.splitlines()) == 1, err
            assert err.strip() != "error: DEADLINE_EXCEEDED: Deadline Exceeded"

        first = json.loads(await read_line(watch, timeout=30))
        second = json.loads(await read_line(watch, timeout=30))
        assert first["type"] == second["type"] == "STALE"
        assert second["age_seconds"] > first["age_seconds"] > 0

        own_etcd.start()
        own_etcd.wait_ready()
        while (line := json.loads(await read_line(watch, timeout=30)))["type"] == "STALE":
            pass
        assert line["type"] == "CURRENT"
        code, _, _ = await interrupt(watch)
    assert code == 0


async def test_register_detach_hands_over_the_token_and_deregister_uses_it(
    start_frontend, connect, tmp_path
):
    frontend = await start_frontend()
    token_file = tmp_path / "n7.token"
    code, out, err = await run_cli(
        "register",
        *("--endpoints", frontend.address, "--id", "n7", *REGISTER_ARGS, "--ttl", "60"),
        *("--detach", "--registration-token-file", str(token_file)),
    )
    assert code == 0, err
    assert out.startswith("registered dc1/data/n7 (incarnation 1); detached: it lasts 60s")
    assert token_file.stat().st_mode & 0o777 == 0o600
    assert "n7" in await node_ids(connect(frontend))  # still there: nothing deregistered it

    wrong = tmp_path / "wrong.token"
    wrong.write_text("not-the-token\n")
    code, _, err = await run_cli(
        "deregister", "dc1/data/n7", "--endpoints", frontend.address,
        "--registration-token-file", str(wrong),
    )  # fmt: skip
    assert code == 1 and err.startswith("error: NOT_FOUND: no registration of dc1/data/n7")
    code, out, err = await run_cli(
        "deregister", "dc1/data/n7", "--endpoints", frontend.address,
        "--registration-token-file", str(token_file), "-o", "json",
    )  # fmt: skip
    assert code == 0, err
    assert json.loads(out)["type"] == "DEREGISTERED"
    assert "n7" not in await node_ids(connect(frontend))

    code, out, _ = await run_cli(
        "register", "--endpoints", frontend.address, "--id", "n8", *REGISTER_ARGS,
        "--detach", "-o", "json",
    )  # fmt: skip
    assert code == 0 and len(json.loads(out)["token"]) > 20  # no file: printed once


async def test_admin_tables_for_people(start_frontend, connect):
    frontend = await start_frontend()
    endpoint = ("--admin-endpoints", f"127.0.0.1:{frontend.admin.port}")
    await register(connect(frontend), node("n1"))
    await eventually(lambda: frontend.evictor.status.leader, message="leads eviction")
    code, out, err = await run_cli("admin", "frontends", *endpoint)
    assert code == 0, err
    assert out.splitlines()[0].split()[:3] == ["ID", "HOST", "PID"]
    assert f"{frontend.frontend_id} *" in out
    code, out, _ = await run_cli("admin", "node", "maintenance", "dc1/data/n1", *endpoint)
    assert code == 0 and out.startswith("dc1/data/n1 is OUT_OF_SERVICE at revision ")
    code, out, _ = await run_cli("admin", "node", "show", "dc1/data/n1", *endpoint)
    assert "operator override OUT_OF_SERVICE by ip:127.0.0.1" in out
    code, out, _ = await run_cli("admin", "evictor", *endpoint)
    assert out.startswith(f"frontend {frontend.frontend_id}: LEADS eviction")
    assert "self-preservation only in datacenters of 10 members or more" in out
    code, out, _ = await run_cli("admin", "suspects", *endpoint)
    assert out.strip().endswith("0 suspect(s)")
    code, out, err = await run_cli("admin", "node", "clear", "dc1/data/n2", *endpoint)
    assert code == 1 and "FAILED_PRECONDITION" in err and "not a live member" in err
