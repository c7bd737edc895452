"""The `noderegistry` command: serve (the frontend) and register, nodes, watch, health (the SDK)."""
