"""Survey link tokens."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os


def new_nonce() -> bytes:
    return os.urandom(16)


def new_nonces(n: int) -> bytes:
    """`n` nonces of 16 bytes, concatenated: one system call for a whole chunk of a sample."""
    return os.urandom(16 * n)


def link_token(link_key: bytes, nonce: bytes) -> str:
    """URL-safe token, 256 bits: HMAC-SHA256(link key, nonce)."""
    return base64.urlsafe_b64encode(hmac.new(link_key, nonce, hashlib.sha256).digest()).rstrip(b"=").decode()


def token_hash(token: str) -> str:
    """What responses stores and looks a visitor's token up by."""
    return hashlib.sha256(token.encode()).hexdigest()
