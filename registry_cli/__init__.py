"""The `noderegistry` command: `serve` (the frontend) and the client verbs register, nodes, watch,
health (through the SDK), and shell completion."""

import os

# grpc's C core writes its own log lines to stderr (a failed TLS handshake, at INFO, by default):
# the command says what failed in one `error:` line of its own. Read once, when grpc is first
# imported, which is after this; GRPC_VERBOSITY set by the user wins.
os.environ.setdefault("GRPC_VERBOSITY", "ERROR")

from noderegistry import __version__ as __version__
