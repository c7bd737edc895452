"""Registration tokens: random secrets of which only a hash is stored.

A token proves ownership of a registration (etcd lease ids are sequential and prove nothing). To
make Register safe to retry after an unknown outcome, the record also keeps the token sealed with a
key derived from the client's idempotency key: only a caller who knows that key can recover it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

TOKEN_BYTES = 32


def new_token() -> str:
    """A fresh registration token: 32 random bytes, URL-safe base64."""
    return base64.urlsafe_b64encode(secrets.token_bytes(TOKEN_BYTES)).decode().rstrip("=")


def hash_token(token: str) -> str:
    """The token's hash, the only form of it that is stored."""
    return hashlib.sha256(b"noderegistry/token\0" + token.encode()).hexdigest()


def token_matches(token: str, token_hash: str) -> bool:
    """Whether `token` is the one `token_hash` was made from (in constant time)."""
    return bool(token) and hmac.compare_digest(hash_token(token), token_hash)


def hash_idempotency_key(idempotency_key: str) -> str:
    """The stored form of a client's idempotency key; "" for none."""
    if not idempotency_key:
        return ""
    return hashlib.sha256(b"noderegistry/idempotency\0" + idempotency_key.encode()).hexdigest()


def _seal_pad(idempotency_key: str, length: int) -> bytes:
    pad = hashlib.sha512(b"noderegistry/seal\0" + idempotency_key.encode()).digest()
    return pad[:length]


def seal_token(token: str, idempotency_key: str) -> str:
    """The token XOR a pad derived from the idempotency key, hex; "" without a key."""
    if not idempotency_key:
        return ""
    raw = token.encode()
    return bytes(
        a ^ b for a, b in zip(raw, _seal_pad(idempotency_key, len(raw)), strict=True)
    ).hex()


def unseal_token(sealed: str, idempotency_key: str) -> str:
    """The sealed token; callers check the idempotency key's hash first (a wrong key gives junk)."""
    raw = bytes.fromhex(sealed)
    pad = _seal_pad(idempotency_key, len(raw))
    return bytes(a ^ b for a, b in zip(raw, pad, strict=True)).decode(errors="replace")
