"""A stock grpcio xDS client, run as its own process by the xDS tests (it reads the bootstrap
named by GRPC_XDS_BOOTSTRAP once per process).

    python tests/support/xds_client.py TARGET

Calls `/test.Backend/Name` on TARGET (an `xds:///...` target) every 10 ms and prints one line
per call: `pick <backend name>` or `error <code>`. It also serves CSDS (the client's xDS
configuration dump) on a loopback port, announced first as `csds <port>`. It stops when stdin
closes.
"""

from __future__ import annotations

import sys
import threading
import time
from concurrent import futures

import grpc
from grpc_csds import add_csds_servicer  # type: ignore[import-untyped]


def main(target: str) -> None:
    csds = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    add_csds_servicer(csds)
    port = csds.add_insecure_port("127.0.0.1:0")
    csds.start()
    print(f"csds {port}", flush=True)
    stop = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    channel = grpc.insecure_channel(target)
    name = channel.unary_unary("/test.Backend/Name")
    while not stop.is_set():
        try:
            print(f"pick {name(b'', timeout=2).decode()}", flush=True)
        except grpc.RpcError as err:
            print(f"error {err.code().name}", flush=True)
            time.sleep(0.05)
        time.sleep(0.01)
    channel.close()
    csds.stop(0)


if __name__ == "__main__":
    main(sys.argv[1])
