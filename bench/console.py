"""The web console with 10,000 nodes, in Debian's headless Chromium (the browser the console's
tests use), each figure beside a same-run floor measured in the same page:

- time to first paint: the console opened on a registry of N nodes, from navigation until the
  first page of nodes is shown; floor: the same snapshot read bare from the event stream the
  console reads, and parsed;
- applying C changes: C registrations at once, from the first of their events reaching the page
  until the last is shown (the counts and the visible rows repainted); floor: the same events
  read by a bare event-stream reader in the same page, first to last.

A frontend process of its own (cluster `bench-console`) on the given etcd; every loop bounded.

    python -m bench.console [--nodes 10000] [--changes 100]
"""

from __future__ import annotations

import argparse
import asyncio
import re
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc.aio
from noderegistry.v1 import registry_pb2 as pb
from noderegistry.v1 import registry_pb2_grpc

from bench import browser
from bench.retrying import register_retrying
from registry_service.process.embedded_etcd import EtcdServer

Add = Callable[..., None]
"""Records a figure: (figure, value, unit, baseline, base, **extra), as bench.run's Results.add."""

# In the page: every (revision, time) the console painted and a bare reader received.
_TRACK = """() => {
  window.__painted = [];
  window.__received = [];
  const watch = () => {
    const seen = Number(document.body.dataset.renderedRevision || 0);
    const last = window.__painted[window.__painted.length - 1];
    if (!last || last[0] !== seen) window.__painted.push([seen, performance.now()]);
    requestAnimationFrame(watch);
  };
  requestAnimationFrame(watch);
  const from = document.body.dataset.renderedRevision;
  fetch("/v1/watch", { headers: { "Last-Event-ID": from }, cache: "no-store" }).then(async (r) => {
    const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value;
      let end;
      while ((end = buffer.indexOf("\\n\\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const id = /^id: (\\d+)/m.exec(block);
        if (id && block.startsWith("event: delta")) {
          window.__received.push([Number(id[1]), performance.now()]);
        }
      }
    }
  });
}"""
_SNAPSHOT_FLOOR = """async () => {
  // What the console reads first, read bare: the event stream's snapshot, parsed.
  const started = performance.now();
  const controller = new AbortController();
  const response = await fetch("/v1/watch?datacenter_revisions=true",
    { cache: "no-store", signal: controller.signal });
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value } = await reader.read();
    buffer += value;
    const end = buffer.indexOf("\\n\\n", buffer.indexOf("event: snapshot"));
    if (buffer.includes("event: snapshot") && end >= 0) {
      const block = buffer.slice(buffer.indexOf("event: snapshot"), end);
      const data = JSON.parse(block.slice(block.indexOf("data: ") + 6));
      controller.abort();
      const count = data.datacenters.reduce((n, dc) => n + dc.nodes.length, 0);
      return [performance.now() - started, count];
    }
  }
}"""


def start_frontend(etcd_endpoint: str, workdir: Path) -> tuple[subprocess.Popen[str], str, str]:
    """A frontend process; returns it, its gRPC target and its HTTP API's base URL."""
    log = (workdir / "console-frontend.log").open("w")
    process = subprocess.Popen(
        [
            sys.executable, "-m", "registry_service", "serve", "--listen", "127.0.0.1:0",
            "--admin-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0",
            "--etcd-endpoints", etcd_endpoint, "--cluster", "bench-console", "--workers", "1",
        ],
        stdout=subprocess.PIPE, stderr=log, text=True,
    )  # fmt: skip
    log.close()
    assert process.stdout is not None
    line = process.stdout.readline()
    target = re.search(r"serving on (\S+)", line)
    api = re.search(r"api (http://\S+)/v1/", line)
    if not (target and api):
        process.kill()
        raise RuntimeError(f"the frontend did not start: {line!r}")
    return process, target.group(1), api.group(1)


async def register_many(
    stub: registry_pb2_grpc.RegistryStub, count: int, prefix: str
) -> list[pb.RegisterResponse]:
    """`count` nodes with metadata, 64 Registers in flight."""
    semaphore = asyncio.Semaphore(64)

    async def one(index: int) -> pb.RegisterResponse:
        node = pb.Node(
            id=f"{prefix}-{index:05d}",
            type=("data", "session", "meta")[index % 3],
            datacenter=f"dc{1 + index % 2}",
            address=f"10.{index // 65536 % 256}.{index // 256 % 256}.{index % 256}:9600",
            metadata={"zone": f"z{index % 5}", "shard": str(index % 64)},
        )
        async with semaphore:
            request = pb.RegisterRequest(node=node, ttl_seconds=3600)
            return await register_retrying(stub, request)

    return await asyncio.gather(*(one(index) for index in range(count)))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _first_at_least(points: list[list[float]], revision: int) -> float | None:
    return next((at for seen, at in points if seen >= revision), None)


def missing() -> str:
    """Why the console cannot be measured here ("" when it can): no Playwright (a dev tool), or
    no Chromium."""
    try:
        import playwright.async_api  # noqa: F401
    except ImportError as err:
        return f"Playwright is not installed ({err}): make setup installs it"
    return "" if browser.find_chromium() else browser.MISSING


async def console_figures(
    add: Add, etcd_endpoint: str, workdir: Path, nodes: int = 10_000, changes: int = 100
) -> None:
    """Measures the two figures (see the module docstring) and hands them to `add`; the caller
    checks `missing()` first."""
    print(f"console: {nodes} nodes, {changes} changes, in Chromium", flush=True)
    process, target, api = start_frontend(etcd_endpoint, workdir)
    try:
        async with grpc.aio.insecure_channel(target) as channel:
            stub = registry_pb2_grpc.RegistryStub(channel)
            await register_many(stub, nodes, "console")
            async with browser.chromium_page(browser.find_chromium()) as page:
                await page.goto(f"{api}/ui/favicon.svg")  # same origin, no console
                floor_ms, listed = await page.evaluate(_SNAPSHOT_FLOOR)
                assert listed == nodes, (listed, nodes)
                await page.goto(f"{api}/ui/")
                # Functions, not expressions: the console's Content-Security-Policy forbids eval.
                await page.wait_for_function(
                    "() => performance.getEntriesByName('console:nodes-painted').length > 0"
                    " && document.querySelectorAll('#node-rows tr').length > 0",
                    timeout=120_000,
                )
                painted_ms, watch_started_ms = await page.evaluate(
                    "() => ['console:nodes-painted', 'console:watch-start'].map("
                    "name => performance.getEntriesByName(name)[0].startTime)"
                )
                add(
                    f"console: first paint with {nodes} nodes (navigation -> first page shown)",
                    painted_ms,
                    "ms",
                    "the same snapshot read bare from /v1/watch and parsed",
                    floor_ms,
                    nodes=nodes,
                    from_watch_request_ms=round(painted_ms - watch_started_ms, 1),
                )
                await page.evaluate(_TRACK)
                await page.wait_for_timeout(500)  # the bare reader's stream is open
                answers = await register_many(stub, changes, "change")
                last = max(answer.revision for answer in answers)
                await page.wait_for_function(
                    f"() => Number(document.body.dataset.renderedRevision) >= {last}"
                    f" && window.__received.some(([seen]) => seen >= {last})",
                    timeout=60_000,
                )
                painted = await page.evaluate("() => window.__painted")
                received = await page.evaluate("() => window.__received")
        first = min(at for seen, at in received)
        shown, arrived = _first_at_least(painted, last), _first_at_least(received, last)
        assert shown is not None and arrived is not None
        add(
            f"console: apply {changes} changes among {nodes} nodes (first arrives -> last shown)",
            shown - first,
            "ms",
            "the same events on a bare event stream (first -> last)",
            arrived - first,
            nodes=nodes,
            changes=changes,
        )
    finally:
        process.terminate()
        process.wait(30)


def _print_figure(
    figure: str, value: float, unit: str, baseline: str = "", base: float = 0.0, **_: Any
) -> None:
    ratio = f", ratio {value / base:.3g}" if base else ""
    print(f"  {figure}: {value:.4g} {unit}  ({baseline}: {base:.4g}{ratio}) {_}", flush=True)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--nodes", type=int, default=10_000)
    parser.add_argument("--changes", type=int, default=100)
    args = parser.parse_args()
    why = missing()
    if why:
        raise SystemExit(f"console: not measured: {why}")
    with tempfile.TemporaryDirectory(prefix="noderegistry-console-") as directory:
        workdir = Path(directory)
        etcd = EtcdServer(data_dir=workdir / "etcd", client_port=free_port(), peer_port=free_port())
        etcd.start()
        etcd.wait_ready()
        try:
            started = time.monotonic()
            await console_figures(_print_figure, etcd.endpoint, workdir, args.nodes, args.changes)
            print(f"  ({time.monotonic() - started:.0f}s)")
        finally:
            etcd.stop()


if __name__ == "__main__":
    asyncio.run(main())
