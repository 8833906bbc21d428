from __future__ import annotations

import base64
import json
import time
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass

import httpx
import jwt
from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from shared.settings import ServiceSettings

ALL_KOMMUNER_SCOPE = "kommuner:all"


@dataclass(frozen=True)
class Principal:
    subject: str
    scopes: frozenset[str]
    kommunekoder: frozenset[str]

    @property
    def all_kommuner(self) -> bool:
        return ALL_KOMMUNER_SCOPE in self.scopes

    def may_act_for(self, kommunekode: str) -> bool:
        return self.all_kommuner or kommunekode in self.kommunekoder


class Authenticator:
    """Verifies bearer tokens. Keys come from an inline JWKS or a JWKS URL (refetched on an
    unknown ``kid`` at most once a minute, so key rotation at the provider needs no restart)."""

    def __init__(self, settings: ServiceSettings) -> None:
        self._issuer = settings.auth_issuer
        self._audience = settings.auth_audience
        self._jwks_url = settings.auth_jwks_url
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at = 0.0
        if settings.auth_jwks_json:
            self._load(json.loads(settings.auth_jwks_json))
        elif not settings.auth_jwks_url:
            raise RuntimeError("set AUTH_JWKS_URL or AUTH_JWKS_JSON: services never run without token verification")

    def _load(self, jwks: dict) -> None:
        self._keys = {key.key_id: key for key in jwt.PyJWKSet.from_dict(jwks).keys if key.key_id}

    async def _refresh(self) -> None:
        if not self._jwks_url or time.monotonic() - self._fetched_at < 60:
            return
        self._fetched_at = time.monotonic()
        async with httpx.AsyncClient(timeout=5) as client:
            response = await client.get(self._jwks_url)
            response.raise_for_status()
            self._load(response.json())

    async def verify(self, token: str) -> Principal:
        try:
            kid = jwt.get_unverified_header(token).get("kid")
        except jwt.PyJWTError as exc:
            raise _unauthorized(f"malformed token: {exc}") from None
        if kid not in self._keys:
            await self._refresh()
        key = self._keys.get(kid)
        if key is None:
            raise _unauthorized("token signed with an unknown key")
        try:
            claims = jwt.decode(
                token,
                key.key,
                algorithms=["RS256", "ES256"],
                audience=self._audience,
                issuer=self._issuer,
                options={"require": ["exp", "iat", "sub"]},
                leeway=30,
            )
        except jwt.PyJWTError as exc:
            raise _unauthorized(f"invalid token: {exc}") from None
        kommunekode = claims.get("kommunekode") or []
        if isinstance(kommunekode, str):
            kommunekode = [kommunekode]
        return Principal(
            subject=str(claims["sub"]),
            scopes=frozenset(str(claims.get("scope", "")).split()),
            kommunekoder=frozenset(str(k) for k in kommunekode),
        )


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, detail=detail, headers={"WWW-Authenticate": "Bearer"})


_bearer = HTTPBearer(auto_error=False, description="OAuth2 client-credentials access token (JWT)")


async def get_principal(
    request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)
) -> Principal:
    if credentials is None:
        raise _unauthorized("missing bearer token")
    authenticator: Authenticator = request.app.state.authenticator
    principal = await authenticator.verify(credentials.credentials)
    request.state.principal = principal  # for the audit log (shared.audit)
    return principal


def require_scopes(*scopes: str):
    """Dependency: a verified principal holding every one of ``scopes``."""

    async def dependency(principal: Principal = Depends(get_principal)) -> Principal:
        return ensure_scopes(principal, scopes)

    dependency.__name__ = f"require_{'_'.join(s.replace(':', '_') for s in scopes)}"
    return dependency


def ensure_scopes(principal: Principal, scopes: Iterable[str]) -> Principal:
    """``principal`` if it holds every one of ``scopes``; 403 naming the missing ones otherwise
    (every way in, bearer token, BI key or dashboard session, answers the same)."""
    missing = [scope for scope in scopes if scope not in principal.scopes]
    if missing:
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail=f"missing scope: {' '.join(missing)}")
    return principal


def ensure_kommune_access(principal: Principal, kommunekode: str) -> None:
    if not principal.may_act_for(kommunekode):
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail=f"not allowed to act for municipality {kommunekode}")


# A BI tool or the dashboard sends the same token for many requests, and verifying it (base64,
# JSON, an RSA or ECDSA signature) costs milliseconds: a token that verified completely is
# remembered until it expires, and never longer than ``max_age``, so a key withdrawn from the JWKS
# stops working within that time. Keyed by the whole token text; an expired one is verified again
# (and then refused, after the leeway).

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
