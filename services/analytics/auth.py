"""Token verification with a small cache of verified tokens.

Every aggregate read carries a bearer token; verifying it (base64 checks, JSON, an RSA or
ECDSA signature) was a few milliseconds of each read on a busy 2-core machine. A BI tool or
the dashboard sends the same token for many requests, so a token verified once is remembered
until it expires (and never longer than ``max_age``, so a key withdrawn from the JWKS stops
working within that time). Only a token that verified completely is cached, keyed by its
whole text; an expired one is verified again (and then refused, after the shared leeway).
"""

from __future__ import annotations

import base64
import json
import time
from collections import OrderedDict

from shared.auth import Principal
from shared.auth.verify import Authenticator
from shared.settings import ServiceSettings


class CachingAuthenticator(Authenticator):
    def __init__(self, settings: ServiceSettings, *, max_tokens: int = 1024, max_age: float = 60.0) -> None:
        super().__init__(settings)
        self._max_tokens = max_tokens
        self._max_age = max_age
        self._verified: OrderedDict[str, tuple[float, Principal]] = OrderedDict()

    async def verify(self, token: str) -> Principal:
        now = time.time()
        hit = self._verified.get(token)
        if hit is not None and hit[0] > now:
            self._verified.move_to_end(token)
            return hit[1]
        principal = await super().verify(token)  # raises for anything not fully valid
        self._verified[token] = (min(_expiry(token), now + self._max_age), principal)
        self._verified.move_to_end(token)
        while len(self._verified) > self._max_tokens:
            self._verified.popitem(last=False)
        return principal


def _expiry(token: str) -> float:
    """The ``exp`` claim of a token that has just been verified (so the payload is authentic)."""
    payload = token.split(".")[1]
    return float(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["exp"])
