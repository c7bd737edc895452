"""The `noderegistry` command: `serve` (the frontend) and the client verbs register, nodes, watch,
health (through the SDK), and shell completion."""

from noderegistry import __version__ as __version__
