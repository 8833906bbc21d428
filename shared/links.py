"""Survey link tokens: the format dispatch issues and responses checks, a contract between the two.

A token is ``base64url(nonce || tag)``, 32 bytes (43 characters): the nonce is the minute the link
was issued (4 bytes, Unix minutes, big-endian) and 16 random bytes; the tag is the first 12 bytes
of HMAC-SHA256(link key, label || nonce). Dispatch keeps the nonce and re-derives the token for
every letter; responses stores only the token's SHA-256 and, holding the link key too, can tell a
token dispatch issued from any other string without a lookup: a link whose letter reached the
citizen before responses learnt of it (``link.issued`` still on its way) is told apart from a guess
(``issued_at``). Without the key nothing about a token can be learnt or forged; a random string
passes the tag with probability 2^-96.

A 16-byte nonce is a link issued before tokens carried their issue time: its token is
HMAC-SHA256(link key, nonce) whole, and ``issued_at`` knows nothing of it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import struct
from datetime import UTC, datetime

NONCE_BYTES = 20
RANDOM_BYTES = 16
TAG_BYTES = 12
LEGACY_NONCE_BYTES = 16
_LABEL = b"borgerblik survey link v2\x00"


def new_nonces(n: int, now: datetime | None = None) -> list[bytes]:
    """``n`` nonces issued now: one read of the system's randomness for all of them."""
    minute = struct.pack(">I", int((now or datetime.now(UTC)).timestamp()) // 60)
    randomness = os.urandom(RANDOM_BYTES * n)
    return [minute + randomness[RANDOM_BYTES * i : RANDOM_BYTES * (i + 1)] for i in range(n)]


def _tag(link_key: bytes, nonce: bytes) -> bytes:
    return hmac.new(link_key, _LABEL + nonce, hashlib.sha256).digest()[:TAG_BYTES]


def link_token(link_key: bytes, nonce: bytes) -> str:
    """The URL-safe token of the link with this nonce."""
    if len(nonce) == NONCE_BYTES:
        raw = nonce + _tag(link_key, nonce)
    else:  # a link issued with a 16-byte nonce keeps its token
        raw = hmac.new(link_key, nonce, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def issued_at(link_key: bytes, token: str) -> datetime | None:
    """When the link with this token was issued, if dispatch issued it under ``link_key``; None
    for anything else (a guess, a typo, a link issued before tokens carried their time)."""
    if len(token) != 43:
        return None
    try:
        raw = base64.urlsafe_b64decode(token + "=")
    except (binascii.Error, ValueError):
        return None
    nonce, tag = raw[:NONCE_BYTES], raw[NONCE_BYTES:]
    if len(tag) != TAG_BYTES or not hmac.compare_digest(tag, _tag(link_key, nonce)):
        return None
    return datetime.fromtimestamp(struct.unpack(">I", nonce[:4])[0] * 60, UTC)


def token_hash(token: str) -> str:
    """What responses stores and looks a visitor's token up by."""
    return hashlib.sha256(token.encode()).hexdigest()
