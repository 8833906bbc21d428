"""The BI keys' rules, without I/O: what a key may read, how its secret is made and checked."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass

from shared.auth import Principal
from shared.auth.verify import ALL_KOMMUNER_SCOPE

# What a key may ever do: read the published tables. Nothing that changes anything, no other
# service: a key that leaks from a BI server gives away what its municipality reads anyway.
READ_SCOPE = "aggregates:read"
KEY_ID_PREFIX = "bbk_"
KEY_ID_PATTERN = r"^bbk_[0-9a-f]{16}$"
_KEY_ID = re.compile(KEY_ID_PATTERN)


class KeyRightsError(ValueError):
    """A key was asked for more than its maker may read."""


@dataclass(frozen=True)
class KeyRights:
    scopes: tuple[str, ...]
    kommunekoder: tuple[str, ...]


def new_credentials() -> tuple[str, str]:
    """A fresh (key id, secret): 64 random bits name the key, 256 bits are its secret."""
    return KEY_ID_PREFIX + secrets.token_hex(8), secrets.token_urlsafe(32)


def hash_secret(secret: str) -> str:
    """The secret as stored: SHA-256 (the secret is 256 random bits, so no slow hash is needed:
    there is no dictionary to try)."""
    return hashlib.sha256(secret.encode()).hexdigest()


def secret_matches(secret: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_secret(secret), stored_hash)


def is_key_id(text: str) -> bool:
    return bool(_KEY_ID.fullmatch(text))




def key_rights(maker: Principal, kommunekoder: Iterable[str] | None, all_kommuner: bool) -> KeyRights:
    """What a key made by ``maker`` may read: the published tables, of the municipalities asked
    for (default: all of the maker's), never more than the maker reads itself."""
    if READ_SCOPE not in maker.scopes:
        raise KeyRightsError(f"a BI key reads the tables: its maker needs the scope {READ_SCOPE}")
    if all_kommuner:
        if not maker.all_kommuner:
            raise KeyRightsError(f"all_kommuner: only a client with the scope {ALL_KOMMUNER_SCOPE} may make such a key")
        if kommunekoder:
            raise KeyRightsError("give kommunekoder or all_kommuner, not both")
        return KeyRights((READ_SCOPE, ALL_KOMMUNER_SCOPE), ())
    wanted = sorted(set(maker.kommunekoder if kommunekoder is None else kommunekoder))
    beyond = [k for k in wanted if not maker.may_act_for(k)]
    if beyond:
        raise KeyRightsError(f"kommunekoder: not allowed to read for municipality {', '.join(beyond)}")
    return KeyRights((READ_SCOPE,), tuple(wanted))


def key_principal(key_id: str, scopes: Iterable[str], kommunekoder: Iterable[str]) -> Principal:
    """Who a request with the key is: the key itself (its id in the audit log and the logs)."""
    return Principal(subject=f"bi-key:{key_id}", scopes=frozenset(scopes), kommunekoder=frozenset(kommunekoder))
