"""Who a caller is and what it may do (bearer tokens, their scopes, permissions per node), and the
files that prove it (certificates and the tokens file, read again when they change)."""
