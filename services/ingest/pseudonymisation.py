"""CPR number -> pseudonym (keyed hash, its rule in ``domain.pseudonym``) and CPR at rest
(authenticated encryption)."""

from __future__ import annotations

import os

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from services.ingest.domain.pseudonym import PseudonymKey, pseudonym_for

__all__ = ["PseudonymKey", "decrypt_cpr", "encrypt_cpr", "pseudonym_for"]


def encrypt_cpr(cpr: str, *, key: bytes, key_id: str) -> bytes:
    nonce = os.urandom(12)
    # The key id is authenticated too: a ciphertext cannot be passed off under another key.
    return nonce + AESGCM(key).encrypt(nonce, cpr.encode(), key_id.encode())


def decrypt_cpr(blob: bytes, *, key: bytes, key_id: str) -> str:
    return AESGCM(key).decrypt(blob[:12], blob[12:], key_id.encode()).decode()
