"""The HTTP API through curl (Debian's, as a runbook would use it): the README's examples run as
printed, a blocking read returns once another frontend registers, an event stream resumed after
a disconnect gives exactly what was missed, and refusals carry their status and message."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
from pathlib import Path

import pytest
from noderegistry.v1 import registry_pb2 as pb

from tests.support.api import key_of, node, register
from tests.support.http_api import api_url
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
README_API = "http://127.0.0.1:8080"


def curl() -> str:
    found = shutil.which("curl")
    assert found, "curl is missing: install Debian's curl package (apt-get install curl)"
    return found


def readme_lines() -> list[str]:
    """The shell block of the README's HTTP API section, one command per line."""
    text = (REPO / "README.md").read_text()
    section = text.split("\n## HTTP API and web console\n", 1)[1].split("\n## ", 1)[0]
    (block,) = re.findall(r"```sh\n(.*?)```", section, re.DOTALL)
    return block.splitlines()


async def start(command: str, env: dict[str, str] | None = None) -> asyncio.subprocess.Process:
    """`bash -c command` in a session of its own (Ctrl-C reaches curl as a terminal's would)."""
    return await asyncio.create_subprocess_exec(
        "bash",
        "-c",
        command,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **(env or {})},
        start_new_session=True,
    )


async def finish(process: asyncio.subprocess.Process, timeout: float = 30) -> str:
    async with asyncio.timeout(timeout):
        out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    return out.decode()


async def read_until(process: asyncio.subprocess.Process, text: str, timeout: float = 20) -> str:
    assert process.stdout is not None
    seen = ""
    async with asyncio.timeout(timeout):
        while text not in seen:
            line = await process.stdout.readline()
            assert line, f"ended before printing {text!r}: {seen!r}"
            seen += line.decode()
    return seen


async def interrupt(process: asyncio.subprocess.Process) -> str:
    """Ctrl-C, then whatever it printed before it stopped."""
    os.killpg(process.pid, signal.SIGINT)
    async with asyncio.timeout(10):
        out, _ = await process.communicate()
    return out.decode()


def events(text: str) -> list[tuple[str, int | None, dict]]:
    """The Server-Sent Events in curl's output: (event, id, data)."""
    found = []
    for block in text.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "data" in fields:
            identifier = fields.get("id")
            found.append(
                (
                    fields["event"],
                    int(identifier) if identifier else None,
                    json.loads(fields["data"]),
                )
            )
    return found


async def test_the_readme_examples_work_as_printed(start_frontend, connect):
    frontend = await start_frontend()
    stub = connect(frontend)
    await register(stub, node("data-1", "data", "dc1"), ttl=600)  # the Quick start's
    lines = readme_lines()
    assert len(lines) == 8, lines
    printed: list[str] = []
    prelude = ""
    for line in lines:
        command = line.replace(README_API, api_url(frontend))
        comment = command.partition("#")[2]
        if command.startswith("export "):
            prelude += command.partition("#")[0] + "\n"
        elif command.startswith("index="):  # assigned once, as in a shell
            value = (await finish(await start(prelude + command + '\necho "$index"'))).strip()
            prelude += f"index={value}\n"
            printed.append(value)
        elif "blocks" in comment:
            # 1. It waits; 2. a data node registers; 3. it answers with it, long before 60 s.
            blocked = await start(prelude + command)
            await eventually(lambda: frontend.api.waiting == 1, message="the read blocks")
            await register(stub, node("data-2", "data", "dc1"))
            printed.append(await finish(blocked, timeout=20))
        elif "Ctrl-C" in comment:
            watch = await start(prelude + command)
            expected = "event: delta" if "Last-Event-ID" in command else "event: snapshot"
            before = await read_until(watch, expected)
            printed.append(before + await interrupt(watch))
        else:
            printed.append(await finish(await start(prelude + command)))
    listed, one, index, answered, watched, resumed, audit = printed
    assert [n["id"] for dc in json.loads(listed)["datacenters"] for n in dc["nodes"]] == ["data-1"]
    assert json.loads(one)["node"]["id"] == "data-1"
    answer = json.loads(answered)
    assert answer["index"] > int(index)
    assert [n["id"] for dc in answer["datacenters"] for n in dc["nodes"]] == ["data-1", "data-2"]
    assert "event: snapshot" in watched and '"id":"data-2"' in watched
    (delta,) = [event for event in events(resumed) if event[0] != "progress"]
    assert delta[0] == "delta" and delta[1] == answer["index"]
    assert [(c["type"], c["node"]["id"]) for c in delta[2]["events"]] == [("ADDED", "data-2")]
    assert [entry["cause"] for entry in json.loads(audit)["entries"]] == ["REGISTERED"]


async def test_a_curl_blocking_read_returns_once_another_frontend_registers(
    start_frontend, connect
):
    reader, writer = await start_frontend(), await start_frontend()
    url = f"{api_url(reader)}/v1/nodes?type=data"
    index = json.loads(await finish(await start(f"{curl()} -s '{url}'")))["index"]
    blocked = await start(f"{curl()} -s -D - '{url}&index={index}&wait=100s'")
    await eventually(lambda: reader.api.waiting == 1, message="curl's read blocks")
    added = await register(connect(writer), node("d1", "data"))
    out = await finish(blocked, timeout=20)  # the wait was 100 s
    head, _, body = out.partition("\r\n\r\n")
    assert head.startswith("HTTP/1.1 200")
    assert f"X-Registry-Index: {added.revision}" in head
    assert json.loads(body)["index"] == added.revision


async def test_a_curl_event_stream_resumed_after_a_disconnect_gets_exactly_what_it_missed(
    start_frontend, connect
):
    frontend = await start_frontend()
    stub = connect(frontend)
    first = await register(stub, node("n1", "data"))
    url = f"{api_url(frontend)}/v1/watch?type=data"
    watch = await start(f"{curl()} -sN '{url}'")
    await read_until(watch, "event: snapshot")
    second = await register(stub, node("n2", "data"))
    await read_until(watch, f"id: {second.revision}")  # the last event it saw
    await interrupt(watch)
    # Away: n3 joins, n1 leaves, a meta node joins (outside the scope).
    third = await register(stub, node("n3", "data"))
    await register(stub, node("m1", "meta"))
    gone = await stub.Deregister(pb.DeregisterRequest(key=key_of(first.node), token=first.token))
    resumed = await start(f"{curl()} -sN -H 'Last-Event-ID: {second.revision}' '{url}'")
    out = await read_until(resumed, f"id: {gone.revision}")
    out += await interrupt(resumed)
    missed = [
        (name, revision, [(c["type"], c["node"]["id"]) for c in data["events"]])
        for name, revision, data in events(out)
        if name == "delta"
    ]
    assert missed == [
        ("delta", third.revision, [("ADDED", "n3")]),
        ("delta", gone.revision, [("REMOVED", "n1")]),
    ]
    assert "event: snapshot" not in out


async def test_curl_gets_401_403_and_400_with_the_message(tmp_path, start_frontend):
    tokens = tmp_path / "tokens"
    tokens.write_text("fleet register fleet-1\nreader watch reader-2\n")
    frontend = await start_frontend(auth_tokens_file=str(tokens))
    base = api_url(frontend)
    for token, path, status, code in (
        ("", "/v1/nodes", 401, "UNAUTHENTICATED"),
        ("fleet-1", "/v1/nodes", 403, "PERMISSION_DENIED"),
        ("reader-2", "/v1/nodes?type=Data", 400, "INVALID_ARGUMENT"),
        ("reader-2", "/v1/nodes?index=-3", 400, "INVALID_ARGUMENT"),
    ):
        header = f"-H 'Authorization: Bearer {token}'" if token else ""
        out = await finish(
            await start(f"{curl()} -s -w '\\n%{{http_code}}' {header} '{base}{path}'")
        )
        body, _, got = out.rpartition("\n")
        assert int(got) == status, (path, out)
        error = json.loads(body)["error"]
        assert error["code"] == code and error["message"], out
