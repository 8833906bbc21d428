"""CPR number -> pseudonym (keyed hash) and CPR at rest (authenticated encryption)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
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


class Pseudonymiser:
    """The per-delivery hot path of the functions above: keys are set up once, not per row.

    Constructing an AESGCM object per row costs more than the encryption itself, and a delivery
    may hold a million rows. Output formats are exactly those of ``pseudonym_for``,
    ``encrypt_cpr`` and ``shared.crypto.seal_contact`` (dispatch opens them with ``open_contact``).
    """

    def __init__(
        self,
        *,
        pseudonym_key: bytes,
        cpr_key: bytes,
        cpr_key_id: str,
        contact_key: bytes,
        contact_key_id: str,
        round_id: str,
    ) -> None:
        self._pseudonym_key = pseudonym_key
        self._cpr_aead = AESGCM(cpr_key)
        self._cpr_key_id_bytes = cpr_key_id.encode()
        self.cpr_key_id = cpr_key_id
        self._contact_aead = AESGCM(contact_key)
        self.contact_key_id = contact_key_id
        self._aad_prefix = f"{round_id}|".encode()

    def pseudonym_digest(self, cpr: str) -> bytes:
        return hmac.digest(self._pseudonym_key, cpr.encode(), hashlib.sha256)

    def encrypt_cpr(self, cpr: str) -> bytes:
        nonce = os.urandom(12)
        return nonce + self._cpr_aead.encrypt(nonce, cpr.encode(), self._cpr_key_id_bytes)

    def seal_contact(self, *, cpr: str, name: str | None, phone_e164: str | None, pseudonym: str) -> dict[str, str]:
        """A ``SealedContact`` as its JSON form (the event payload is built from plain dicts)."""
        nonce = os.urandom(12)
        plaintext = json.dumps(
            {"cpr": cpr, "name": name, "phone": phone_e164, "exempt": False}, separators=(",", ":")
        ).encode()
        ciphertext = self._contact_aead.encrypt(nonce, plaintext, self._aad_prefix + pseudonym.encode())
        return {
            "key_id": self.contact_key_id,
            "nonce": base64.b64encode(nonce).decode(),
            "ciphertext": base64.b64encode(ciphertext).decode(),
        }
