"""The use cases: register, renew, deregister, read, operate, announce, evict."""
