"""Municipal login: OpenID Connect authorization-code flow (with PKCE) against a broker in front of
KOMBIT's Fælleskommunal Adgangsstyring, through authlib's Starlette integration.

FK Adgangsstyring issues a SAML assertion with the user's job-function roles and data
restrictions (the municipality); an OIDC broker (e.g. Keycloak, or the municipality's own IdP
broker) turns it into an ID token. Which claims carry the roles and the municipality is
configuration (``DASHBOARD_OIDC_*``, :class:`OidcSettings`), as is the mapping of roles to the
API's scopes, so the dashboard session holds the same :class:`~shared.auth.Principal` (scopes,
``kommunekode`` binding) the bearer tokens give: the same 403 rules apply.

The login ends in a server-side dashboard session (:mod:`.sessions`). authlib keeps its state,
nonce and PKCE verifier in ``request.session`` between the redirect and the callback;
:func:`open_flow` / :func:`store_flow` keep that in a short-lived AES-GCM sealed cookie (key
``DASHBOARD_SESSION_KEY``, 32 bytes base64url; without it a random key per process), so a flow
that never comes back leaves nothing on the server.
"""

from __future__ import annotations

import base64
import json
import os
import re
import time
import warnings

from authlib.deprecate import AuthlibDeprecationWarning  # installs Authlib's "always" filter

with warnings.catch_warnings():
    # Authlib's Starlette client runs on its httpx client, which warns that it will move to the
    # httpx2 package; httpx is the client this project uses, and the notice is not an operator's.
    warnings.simplefilter("ignore", AuthlibDeprecationWarning)
    from authlib.integrations.starlette_client import OAuth
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from fastapi import Request, Response
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.auth import Principal

FLOW_COOKIE = "bb_oidc_flow"
KOMMUNEKODE = re.compile(r"^[0-9]{3}$")


class OidcSettings(BaseSettings):
    """``DASHBOARD_OIDC_*``. Off unless a client id and an issuer or discovery URL are set."""

    model_config = SettingsConfigDict(env_prefix="DASHBOARD_OIDC_", extra="ignore")

    issuer: str | None = None  # discovery at <issuer>/.well-known/openid-configuration
    discovery_url: str | None = None  # overrides the issuer-derived one
    client_id: str | None = None
    client_secret: str | None = None
    scope: str = "openid profile"
    # Claim with the user's municipality (a code, a list of codes, or values in kommune_map such as the CVR number).
    kommune_claim: str = "kommunekode"
    roles_claim: str = "roles"  # dotted for nested claims, e.g. realm_access.roles (Keycloak)
    # Role (FK Adgangsstyring job function role, as the broker names it) -> the API's scopes.
    role_scopes: dict[str, list[str]] = {
        "borgerblik-laes": ["aggregates:read"],
        "borgerblik-kl": ["aggregates:read", "kommuner:all"],
    }
    kommune_map: dict[str, str] = {}  # e.g. {"55133018": "751"} (CVR -> kommunekode)
    redirect_uri: str | None = None  # behind a proxy; default: this app's callback URL

    @property
    def enabled(self) -> bool:
        return bool(self.client_id and (self.discovery_url or self.issuer))

    @property
    def metadata_url(self) -> str:
        return self.discovery_url or f"{self.issuer.rstrip('/')}/.well-known/openid-configuration"


def settings() -> OidcSettings:
    return OidcSettings()


def client(request: Request, cfg: OidcSettings):
    """authlib's client for the broker; one per configuration (kept on app.state)."""
    key = cfg.model_dump_json()
    cached = getattr(request.app.state, "dashboard_oidc", None)
    if cached and cached[0] == key:
        return cached[1]
    oauth = OAuth()
    registered = oauth.register(
        "broker", client_id=cfg.client_id, client_secret=cfg.client_secret, server_metadata_url=cfg.metadata_url,
        client_kwargs={"scope": cfg.scope, "code_challenge_method": "S256"},
    )
    request.app.state.dashboard_oidc = (key, registered)
    return registered


# -- the flow's sealed cookie ------------------------------------------------------------------------

_PROCESS_KEY = os.urandom(32)


def _key() -> bytes:
    configured = os.environ.get("DASHBOARD_SESSION_KEY")
    if configured:
        key = base64.urlsafe_b64decode(configured + "=" * (-len(configured) % 4))
        if len(key) != 32:
            raise RuntimeError("DASHBOARD_SESSION_KEY must be 32 bytes, base64url")
        return key
    return _PROCESS_KEY


def seal(payload: dict, purpose: str) -> str:
    nonce = os.urandom(12)
    body = AESGCM(_key()).encrypt(nonce, json.dumps(payload, separators=(",", ":")).encode(), purpose.encode())
    return base64.urlsafe_b64encode(nonce + body).decode().rstrip("=")


def unseal(value: str | None, purpose: str) -> dict | None:
    if not value:
        return None
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
        payload = json.loads(AESGCM(_key()).decrypt(raw[:12], raw[12:], purpose.encode()))
    except (ValueError, InvalidTag, json.JSONDecodeError):
        return None
    if not isinstance(payload, dict) or payload.get("exp", 0) < time.time():
        return None
    return payload


# -- authlib's state between the redirect and the callback -------------------------------------------


def open_flow(request: Request) -> None:
    request.scope["session"] = (unseal(request.cookies.get(FLOW_COOKIE), FLOW_COOKIE) or {}).get("data", {})


def store_flow(request: Request, response: Response) -> None:
    # SameSite=Lax: the broker sends the browser back with a cross-site top-level GET.
    value = seal({"data": request.scope.get("session", {}), "exp": time.time() + 600}, FLOW_COOKIE)
    response.set_cookie(FLOW_COOKIE, value, max_age=600, path="/dashboard", httponly=True, samesite="lax",
                        secure=request.url.scheme == "https")


def clear_flow(response: Response) -> None:
    response.delete_cookie(FLOW_COOKIE, path="/dashboard", httponly=True, samesite="lax")


# -- claims -> Principal ---------------------------------------------------------------------------------


def claim(claims: dict, path: str):
    value = claims
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _as_list(value) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [v for v in re.split(r"[\s,]+", value) if v]
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value]
    return [str(value)]


def principal_from_claims(claims: dict, cfg: OidcSettings) -> Principal:
    """The broker's roles become scopes (only those configured); the municipality claim becomes
    the kommunekode binding (codes, or values mapped by ``kommune_map``; anything else dropped)."""
    scopes: set[str] = set()
    for role in _as_list(claim(claims, cfg.roles_claim)):
        scopes.update(cfg.role_scopes.get(role, ()))
    kommuner = {cfg.kommune_map.get(v, v) for v in _as_list(claim(claims, cfg.kommune_claim))}
    subject = str(claims.get("preferred_username") or claims.get("sub"))
    return Principal(subject=subject, scopes=frozenset(scopes), kommunekoder=frozenset(k for k in kommuner if KOMMUNEKODE.match(k)))
