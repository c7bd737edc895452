"""Following the other datacenters' registries (federation)."""
