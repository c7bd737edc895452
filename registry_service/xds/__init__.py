"""The node list over xDS v3 (DESIGN.md §12): any gRPC client or Envoy resolves `xds:///data`."""
