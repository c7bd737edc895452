"""A frontend as a process: serve, workers and their supervisor, the local etcd."""
