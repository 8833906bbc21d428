"""Sealed contact data: the one piece of personal data that crosses a service boundary.

Ingest seals a citizen's contact details (CPR for Digital Post, name, phone) with AES-256-GCM
under a key that only ingest and dispatch hold. Ingest keeps the sealed contact in its own
store and releases it, on ``contacts.released``, only for citizens sampling has drawn. The associated data binds a ciphertext to its round and
pseudonym, so a sealed blob cannot be replayed for another citizen. The key id travels with the
ciphertext so keys can be rotated without downtime.
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import BaseModel


class SealedContact(BaseModel):
    key_id: str
    nonce: str  # base64
    ciphertext: str  # base64


@dataclass(frozen=True)
class ContactDetails:
    cpr: str
    name: str | None
    phone_e164: str | None
    digital_post_exempt: bool = False

    def __repr__(self) -> str:  # never let personal data reach a log through repr()
        return "ContactDetails(<redacted>)"


def _aad(round_id: str, pseudonym: str) -> bytes:
    return f"{round_id}|{pseudonym}".encode()


def seal_contact(contact: ContactDetails, *, round_id: str, pseudonym: str, key_id: str, key: bytes) -> SealedContact:
    nonce = os.urandom(12)
    plaintext = json.dumps(
        {"cpr": contact.cpr, "name": contact.name, "phone": contact.phone_e164, "exempt": contact.digital_post_exempt},
        separators=(",", ":"),
    ).encode()
    ciphertext = AESGCM(key).encrypt(nonce, plaintext, _aad(round_id, pseudonym))
    return SealedContact(key_id=key_id, nonce=base64.b64encode(nonce).decode(), ciphertext=base64.b64encode(ciphertext).decode())


def open_contact(sealed: SealedContact, *, round_id: str, pseudonym: str, keyring: dict[str, bytes]) -> ContactDetails:
    try:
        key = keyring[sealed.key_id]
    except KeyError:
        raise LookupError(f"no contact key with id {sealed.key_id!r}") from None
    plaintext = AESGCM(key).decrypt(
        base64.b64decode(sealed.nonce), base64.b64decode(sealed.ciphertext), _aad(round_id, pseudonym)
    )
    fields = json.loads(plaintext)
    return ContactDetails(cpr=fields["cpr"], name=fields["name"], phone_e164=fields["phone"], digital_post_exempt=fields["exempt"])


def new_key() -> str:
    """A fresh base64 256-bit key, for dev set-ups and tests."""
    return base64.b64encode(os.urandom(32)).decode()


# A phone number alone, sealed for the interviewer's page (dispatch -> responses) under the interview
# key, which only dispatch and responses hold: responses can open a citizen's phone number, never
# their CPR number or name. The associated data names what is sealed, so neither kind of blob can
# be passed off as the other.


def _phone_aad(round_id: str, pseudonym: str) -> bytes:
    return f"phone|{round_id}|{pseudonym}".encode()


def seal_phone(phone_e164: str, *, round_id: str, pseudonym: str, key_id: str, key: bytes) -> SealedContact:
    nonce = os.urandom(12)
    ciphertext = AESGCM(key).encrypt(nonce, phone_e164.encode(), _phone_aad(round_id, pseudonym))
    return SealedContact(key_id=key_id, nonce=base64.b64encode(nonce).decode(), ciphertext=base64.b64encode(ciphertext).decode())


def open_phone(sealed: SealedContact, *, round_id: str, pseudonym: str, keyring: dict[str, bytes]) -> str:
    try:
        key = keyring[sealed.key_id]
    except KeyError:
        raise LookupError(f"no interview key with id {sealed.key_id!r}") from None
    return AESGCM(key).decrypt(
        base64.b64decode(sealed.nonce), base64.b64decode(sealed.ciphertext), _phone_aad(round_id, pseudonym)
    ).decode()
