"""Every service remembers verified tokens until they expire (at most max_age); nothing else is cached."""

from __future__ import annotations

import asyncio

import pytest
from fastapi import HTTPException

from services.analytics.config import AnalyticsSettings
from shared.auth.dev_issuer import DevIssuer
from shared.auth.verify import Authenticator, CachingAuthenticator


def test_verified_token_is_remembered_and_bad_tokens_never_are(monkeypatch) -> None:
    issuer = DevIssuer()
    calls: list[str] = []
    original = Authenticator.verify

    async def counted(self, token: str):
        calls.append(token)
        return await original(self, token)

    monkeypatch.setattr(Authenticator, "verify", counted)
    auth = CachingAuthenticator(AnalyticsSettings(auth_jwks_json=issuer.jwks_json()), max_tokens=2)
    token = issuer.mint("kl", ["aggregates:read", "kommuner:all"])

    async def scenario() -> None:
        first = await auth.verify(token)
        again = await auth.verify(token)
        assert first == again and first.all_kommuner and len(calls) == 1
        forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
        for _ in range(2):
            with pytest.raises(HTTPException) as refused:
                await auth.verify(forged)
            assert refused.value.status_code == 401
        assert calls.count(forged) == 2  # a refused token is verified (and refused) every time
        # Expired tokens are verified again, so the shared verifier decides (and refuses them).
        stale = issuer.mint("old", ["aggregates:read"], ttl_seconds=-3600)
        for _ in range(2):
            with pytest.raises(HTTPException):
                await auth.verify(stale)
        assert calls.count(stale) == 2
        # Bounded: the oldest token is forgotten.
        others = [issuer.mint(f"c{i}", ["aggregates:read"]) for i in range(2)]
        for other in others:
            await auth.verify(other)
        await auth.verify(token)
        assert calls.count(token) == 2

    asyncio.run(scenario())
