"""The registry frontend: gRPC service, etcd store, watch fan-out, evictor, admin surface."""

from noderegistry import __version__ as __version__
