"""CPR number -> pseudonym (keyed hash) and CPR at rest (authenticated encryption)."""

from __future__ import annotations

import hashlib
import hmac
import os

from cryptography.hazmat.primitives.ciphers.aead import AESGCM


def pseudonym_for(cpr: str, key: bytes) -> str:
    """HMAC-SHA256 of the compact CPR number. Without the key, it cannot be reversed by trying
    all ~3.6 billion possible CPR numbers, which a plain hash could."""
    return hmac.new(key, cpr.encode(), hashlib.sha256).hexdigest()


def encrypt_cpr(cpr: str, *, key: bytes, key_id: str) -> bytes:
    nonce = os.urandom(12)
    # The key id is authenticated too: a ciphertext cannot be passed off under another key.
    return nonce + AESGCM(key).encrypt(nonce, cpr.encode(), key_id.encode())


def decrypt_cpr(blob: bytes, *, key: bytes, key_id: str) -> str:
    return AESGCM(key).decrypt(blob[:12], blob[12:], key_id.encode()).decode()
