"""The `noderegistry` command: serve (the frontend) and register, nodes, watch, health (the SDK)."""

from noderegistry import __version__ as __version__
