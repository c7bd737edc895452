"""The CLI as someone uses it every day (issue 26): connection options before or after the
verb, `register` that says so when its Deregister on Ctrl-C fails, `watch` piped into `head`,
and `serve` stopped with two Ctrl-Cs, each without a traceback."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
from pathlib import Path

import pytest

from client_sdk import Node, RegistryClient
from tests.support.api import node, register
from tests.support.cli import COMMAND, environment, interrupt, read_line, run_cli, running_cli
from tests.support.ports import free_port

pytestmark = pytest.mark.integration

REGISTER_ARGS = ("--type", "data", "--datacenter", "dc1", "--address", "10.1.1.1:80")


async def test_connection_options_may_come_before_the_verb(start_frontend, connect):
    frontend = await start_frontend()
    await register(connect(frontend), node("early"))
    code, out, err = await run_cli("--endpoints", frontend.address, "-o", "json", "nodes")
    assert code == 0, err
    assert json.loads(out)["count"] == 1
    admin = f"127.0.0.1:{frontend.admin.port}"
    code, out, err = await run_cli("--admin-endpoints", admin, "admin", "push", "show")
    assert code == 0 and out.startswith("pushes ON"), err
    # After the verb wins: the one before it is a default for this line.
    code, _, err = await run_cli(
        "--endpoints", "127.0.0.1:1", "nodes", "--endpoints", frontend.address
    )
    assert code == 0, err
    code, out, err = await run_cli("--endpoints", frontend.address, "serve")
    assert (code, out) == (2, "")
    assert err == (
        "error: --endpoints is an option of the client commands (register, nodes, watch, "
        "health, admin ...), not of serve\n"
    )


async def test_register_exits_1_and_says_so_when_its_deregister_fails(start_frontend):
    frontend = await start_frontend()
    args = ("--id", "orphan", *REGISTER_ARGS, "--ttl", "30", "--timeout", "2")
    async with running_cli("register", "--endpoints", frontend.address, *args) as process:
        assert (await read_line(process)).startswith("registered dc1/data/orphan")
        await frontend.stop()  # the registry goes away before Ctrl-C
        code, out, err = await interrupt(process)
    assert code == 1, err
    assert "deregistered" not in out
    (line,) = err.splitlines()[-1:]
    assert line.startswith("error: UNAVAILABLE: ")
    assert line.endswith(
        "dc1/data/orphan was not deregistered: it stays registered until its 30s TTL runs out"
    )
    assert "Traceback" not in err


async def test_watch_piped_into_head_ends_quietly_once_head_has_its_line(start_frontend, connect):
    frontend = await start_frontend()
    stub = connect(frontend)
    await register(stub, node("first"))
    pipeline = await asyncio.create_subprocess_exec(
        "bash", "-c",
        f"'{COMMAND}' watch --endpoints {frontend.address} -o json | head -1; "
        'echo "watch exited with ${PIPESTATUS[0]}"',
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=environment(),
    )  # fmt: skip
    assert pipeline.stdout is not None
    first = json.loads(await asyncio.wait_for(pipeline.stdout.readline(), 60))
    assert first["node"]["id"] == "first"
    # head has its line and exits; the watch learns it at its next write, and ends.
    for count in range(200):  # 60 s at most
        await register(stub, node(f"later{count}"))
        try:
            await asyncio.wait_for(asyncio.shield(pipeline.wait()), 0.3)
            break
        except TimeoutError:
            continue
    async with asyncio.timeout(60):
        rest, err = await pipeline.communicate()
    assert rest.decode() == "watch exited with 0\n"
    assert err.decode() == "", err.decode()


async def _stop_twice(serve: subprocess.Popen[str]) -> None:
    os.killpg(serve.pid, signal.SIGINT)
    await asyncio.sleep(0.05)  # not a wait: the second Ctrl-C is meant to land mid-drain
    os.killpg(serve.pid, signal.SIGINT)


async def test_two_ctrl_cs_stop_serve_gracefully_without_a_traceback(tmp_path: Path):
    """A supervisor, two workers and a local etcd in the terminal's process group: Ctrl-C, and
    Ctrl-C again while it drains. Before, the second one killed the supervisor mid-exit (-2)."""
    listen = f"127.0.0.1:{free_port()}"
    serve = subprocess.Popen(
        [
            str(COMMAND), "serve", f"--listen={listen}", "--admin-listen=127.0.0.1:0",
            "--http-listen=127.0.0.1:0", "--workers=2", f"--embedded-etcd-port={free_port()}",
            f"--embedded-etcd-dir={tmp_path / 'etcd'}",
        ],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=environment(), start_new_session=True,  # its own group, as a terminal's job
    )  # fmt: skip
    try:
        assert serve.stdout is not None
        ready = await asyncio.wait_for(asyncio.to_thread(serve.stdout.readline), 120)
        assert "serving on" in ready
        async with RegistryClient(listen) as client:
            registration = await client.register(Node("daily", "data", "dc1", "10.1.1.1:80"))
            async with running_cli("watch", "--endpoints", listen) as watcher:
                # Its stream is open: it printed the node the snapshot holds.
                assert "daily" in await read_line(watcher, timeout=60)
                await registration.close()
                await _stop_twice(serve)
        _, err = await asyncio.to_thread(serve.communicate, timeout=120)
    finally:
        if serve.poll() is None:
            serve.kill()
            serve.wait()
    assert serve.returncode == 0, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    # What `make run` shows of the eviction budget, once (the supervisor's, not each worker's).
    told = [line for line in err.splitlines() if "self-preservation: " in line]
    assert len(told) == 1 and told[0].endswith(
        "self-preservation: a datacenter of fewer than 10 members loses its expired nodes at "
        "once; in a larger one at most 15% of its members (at least 2) are removed as expired "
        "per 60s, the rest held SUSPECT (REGISTRY_SELF_PRESERVATION_MIN_MEMBERS, "
        "REGISTRY_EVICTION_BUDGET_RATIO)"
    ), told
    assert [line for line in err.splitlines() if " ERROR " in line] == []
