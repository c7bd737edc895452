"""ZooKeeper clients (kazoo) for the baseline of the design this registry replaces: a service node
is an ephemeral znode, a subscriber a child watch.

    python -m bench.zk_clients zookeeper HOST:PORT STREAMS   subscribers (bench/subscribers.py's
                                                             protocol: `ready 0`, then `seen
                                                             <marker> <time>`); stops on EOF
    python -m bench.zk_clients register HOST:PORT N SESSIONS registers N nodes (an ephemeral
                                                             znode each) over SESSIONS sessions,
                                                             one create in flight per session;
                                                             prints JSON

A subscriber is a session of its own (ZooKeeper sends one event per session and path) with a
child watch on /bench/fanout set again at each event, as kazoo's ChildrenWatch does: a change
reaches a subscriber when its new list of children holds the new znode.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from kazoo.client import KazooClient
from kazoo.handlers.threading import SequentialThreadingHandler

FANOUT = "/bench/fanout"
NODES = "/bench/nodes"
RECORD = b'{"address":"10.0.0.1:7000","metadata":{"zone":"a","version":"2"},"status":"UP"}'


def _client(hosts: str, handler: SequentialThreadingHandler | None = None) -> KazooClient:
    client = KazooClient(hosts=hosts, timeout=30.0, handler=handler)
    client.start(timeout=60)
    return client


def subscribe(hosts: str, streams: int) -> None:
    """`streams` sessions, each with a child watch set again with every read of the children,
    as kazoo's ChildrenWatch does, but without blocking a thread on the read: the sessions of
    the process share one handler (one thread for watch events, one for answers; kazoo's default
    is two per session, which at hundreds of sessions a process spends its time switching)."""
    lock = threading.Lock()
    seen: dict[str, list[float]] = {}
    known: list[set[str] | None] = [None] * streams
    watching = threading.Semaphore(0)
    handler = SequentialThreadingHandler()

    def arm(position: int) -> None:
        def on_event(event: object) -> None:
            arm(position)

        def on_children(result: object) -> None:
            try:
                children = set(result.get())  # type: ignore[attr-defined]
            except Exception:
                return  # a session that closed
            now = time.monotonic()
            before = known[position]
            known[position] = children if before is None else before | children
            if before is None:
                watching.release()
                return
            with lock:
                for child in children - before:
                    times = seen.setdefault(child, [])
                    times.append(now)
                    if len(times) == streams:
                        print(f"seen {child} {max(times):.6f}", flush=True)

        clients[position].get_children_async(FANOUT, watch=on_event).rawlink(on_children)

    bootstrap = _client(hosts)
    bootstrap.ensure_path(FANOUT)
    with ThreadPoolExecutor(16) as pool:
        clients = list(pool.map(lambda _: _client(hosts, handler), range(streams)))
    for position in range(streams):
        arm(position)
    for _ in range(streams):
        watching.acquire(timeout=120)
    print("ready 0", flush=True)
    sys.stdin.read()
    for client in [bootstrap, *clients]:
        client.stop()


def register(hosts: str, count: int, sessions: int) -> None:
    """Warms the server up first (a fresh JVM compiles its hot paths on the first thousand
    requests; etcd has served the whole run by then): as many znodes, created and deleted."""
    clients = [_client(hosts) for _ in range(sessions)]
    clients[0].ensure_path(NODES)
    latencies: list[float] = []

    def one_session(position: int, prefix: str) -> None:
        client = clients[position]
        for i in range(position, count, sessions):
            begun = time.monotonic()
            client.create(f"{NODES}/{prefix}{i}", RECORD, ephemeral=True)
            latencies.append(time.monotonic() - begun)

    with ThreadPoolExecutor(sessions) as pool:
        list(pool.map(lambda p: one_session(p, "warm"), range(sessions)))
        for i in range(count):
            clients[0].delete(f"{NODES}/warm{i}")
        latencies.clear()
        started = time.monotonic()
        list(pool.map(lambda p: one_session(p, "n"), range(sessions)))
    elapsed = time.monotonic() - started
    latencies.sort()
    p99 = latencies[min(len(latencies) - 1, round(0.99 * (len(latencies) - 1)))]
    print(json.dumps({"rate": count / elapsed, "p99_seconds": p99}), flush=True)
    for client in clients:
        client.stop()


if __name__ == "__main__":
    logging.getLogger("kazoo").setLevel(logging.ERROR)  # sessions closing at the end say so
    if sys.argv[1] == "register":
        register(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    else:
        subscribe(sys.argv[2], int(sys.argv[3]))
