"""The node list over xDS v3 (docs/design.md §12): any gRPC client or Envoy resolves `xds:///data`."""
