"""One etcd watch per process, fanned out to subscribers; the read models it keeps."""
