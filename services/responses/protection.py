"""Protection of the citizen-facing pages: the unknown-token budget, CSRF, security headers.

The defence against guessing a link is the token's size: 256 bits (services/dispatch/links.py),
and never fewer than 128 accepted here. docs/threat-model.md computes what a round absorbs: even
at 128 bits and a million live links, 3.4e23 failed guesses give a chance of one in a billion of
hitting any link, more than the platform could answer in the round's lifetime at any rate. So the
guessing limit is built never to lock a citizen out: a valid, open link is always served, and only
lookups that found no link spend a budget (per client address, and one for all addresses together);
a spent budget turns the 404 of an unknown link into a 429 with Retry-After. Kept by
shared/ratelimit.py (the ``limits`` library, in this process's memory: N replicas allow N times
the budget).

The client address is the TCP peer's, or the one a trusted proxy put in X-Forwarded-For:
uvicorn's ``--forwarded-allow-ips`` (``TRUSTED_PROXIES`` in the Dockerfile and docker-compose.yml)
rewrites it before the app sees the request, and only for those proxies.
"""

from __future__ import annotations

import hmac
import secrets

from fastapi import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.responses.config import ResponsesSettings
from services.responses.service import link_pending
from shared.ratelimit import FailureBudget

CSRF_COOKIE = "bb_csrf"
CSRF_FIELD = "csrf_token"


def client_ip(request: Request) -> str:
    """The client's address, as uvicorn gives it (behind a trusted proxy: the forwarded one)."""
    return request.client.host if request.client else "unknown"


def is_tls(scope: Scope) -> bool:
    return scope.get("scheme") == "https"


class GuessLimiter:
    """The unknown-token budgets: per address and for everyone (module docstring)."""

    def __init__(self, per_address: str, everyone: str, service: str = "responses") -> None:
        self.per_address = FailureBudget(service, "unknown_token", per_address)
        self.everyone = FailureBudget(service, "unknown_token_global", everyone)

    def miss(self, address: str) -> int | None:
        """An unknown (or malformed) token from ``address``: the seconds to wait when a budget is
        spent, else None. A miss refused per address does not spend the global budget, so one
        address cannot make every other address's misses 429."""
        if (wait := self.per_address.failed(("address", address))) is not None:
            return wait
        return self.everyone.failed(("everyone", "*"))

    @classmethod
    def from_settings(cls, settings: ResponsesSettings) -> GuessLimiter:
        return cls(settings.unknown_token_per_address, settings.unknown_token_global)


# --- CSRF: double-submit cookie -------------------------------------------------------------------
# A random value in an HttpOnly, SameSite=Lax cookie, repeated in a hidden field of every form.
# A cross-site page can make the browser post the form, but can neither read the cookie nor set
# it, so it cannot produce a matching field. Works without JavaScript.


def csrf_token_for(request: Request) -> tuple[str, bool]:
    """The client's CSRF token and whether it is new (and must be set as a cookie)."""
    existing = request.cookies.get(CSRF_COOKIE)
    if existing and 20 <= len(existing) <= 100:
        return existing, False
    return secrets.token_urlsafe(32), True


def csrf_valid(request: Request, submitted: str | None) -> bool:
    cookie = request.cookies.get(CSRF_COOKIE)
    return bool(cookie and submitted) and hmac.compare_digest(cookie.encode(), submitted.encode())  # type: ignore[union-attr]


def set_csrf_cookie(response, token: str, secure: bool) -> None:
    response.set_cookie(CSRF_COOKIE, token, httponly=True, samesite="lax", secure=secure, path="/", max_age=60 * 60 * 24 * 60)


# --- security headers ----------------------------------------------------------------------------

# No script at all, and styles only from our own files: the form needs neither inline code nor
# any third party. 'none' for frame-ancestors stops click-jacking of the submit button.
CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; font-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
# Swagger UI at /docs loads its script from a CDN and inlines its setup; it is for developers and
# gets a looser policy (still no framing).
_DOCS_PREFIXES = ("/docs", "/redoc", "/openapi.json")


class SecurityHeaders:
    """Pure ASGI middleware (cheaper than BaseHTTPMiddleware on the hot path)."""

    def __init__(self, app: ASGIApp, settings: ResponsesSettings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        tls = is_tls(scope)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                extra = {
                    b"x-content-type-options": b"nosniff",
                    # The token is in the URL: never send it to another site in a Referer.
                    b"referrer-policy": b"no-referrer",
                    b"x-frame-options": b"DENY",
                    b"cross-origin-opener-policy": b"same-origin",
                    b"permissions-policy": b"camera=(), microphone=(), geolocation=(), interest-cohort=()",
                }
                if path.startswith(_DOCS_PREFIXES):
                    extra[b"content-security-policy"] = b"frame-ancestors 'none'"
                else:
                    extra[b"content-security-policy"] = CSP.encode()
                if path.startswith(("/s/", "/api/")):
                    # Answers and tokens must not linger in a shared computer's cache or history.
                    extra[b"cache-control"] = b"no-store"
                if tls:
                    extra[b"strict-transport-security"] = f"max-age={self.settings.hsts_max_age_seconds}; includeSubDomains".encode()
                present = {name.lower() for name, _ in headers}
                headers += [(name, value) for name, value in extra.items() if name not in present]
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


def unknown_link_answer(request: Request) -> tuple[int, dict[str, str]]:
    """What an unknown link answers (the status and its headers), the same on the citizen's pages
    and in the API: 503 with Retry-After for a link dispatch issued that this service has not
    learnt yet (service.link_pending); 429 with Retry-After when the address's (or everyone's)
    budget of unknown links is spent; 404 otherwise. Counts the miss."""
    settings = request.app.state.settings
    if link_pending(settings, request.path_params.get("token", "")):
        return 503, {"Retry-After": str(settings.link_pending_retry_seconds)}
    if (wait := request.app.state.limiter.miss(client_ip(request))) is not None:
        return 429, {"Retry-After": str(wait)}
    return 404, {}
