"""Protection of the citizen-facing pages: token-guessing rate limit, CSRF, security headers.

Multi-replica note on the rate limit: the buckets live in this process's memory, so with N
replicas behind a load balancer a client gets up to N times the budget (less with sticky
sessions). That is acceptable because the limit is defence in depth (tokens are 128-bit random);
to make it exact, enforce it at the ingress (e.g. nginx ``limit_req`` keyed by client address)
or move the buckets to a shared store (PostgreSQL row per address, or Redis).
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections import OrderedDict

from fastapi import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.responses.config import ResponsesSettings

CSRF_COOKIE = "bb_csrf"
CSRF_FIELD = "csrf_token"


def client_ip(request: Request, settings: ResponsesSettings) -> str:
    if settings.trust_forwarded_headers and (forwarded := request.headers.get("x-forwarded-for")):
        return forwarded.split(",")[0].strip()
    return request.client.host if request.client else "unknown"


def is_tls(scope: Scope, headers: dict[bytes, bytes], settings: ResponsesSettings) -> bool:
    if scope.get("scheme") == "https":
        return True
    return settings.trust_forwarded_headers and headers.get(b"x-forwarded-proto", b"").lower() == b"https"


class UnknownTokenLimiter:
    """Token bucket per client address, drained by lookups of unknown tokens only, so citizens
    answering from one shared address (a job centre, a library) are never slowed down."""

    def __init__(self, burst: int, refill_per_minute: float, max_clients: int = 100_000) -> None:
        self.burst = float(burst)
        self.rate = refill_per_minute / 60.0
        self.max_clients = max_clients
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # ip -> (tokens, updated)

    def _level(self, ip: str, now: float) -> float:
        tokens, updated = self._buckets.get(ip, (self.burst, now))
        return min(self.burst, tokens + (now - updated) * self.rate)

    def blocked(self, ip: str) -> bool:
        return ip in self._buckets and self._level(ip, time.monotonic()) < 1.0

    def retry_after(self, ip: str) -> int:
        missing = 1.0 - self._level(ip, time.monotonic())
        return max(1, int(missing / self.rate) + 1) if self.rate > 0 else 3600

    def record_miss(self, ip: str) -> None:
        now = time.monotonic()
        self._buckets[ip] = (max(0.0, self._level(ip, now) - 1.0), now)
        self._buckets.move_to_end(ip)
        # Bounded memory under a spray of addresses: forget the least recently seen.
        while len(self._buckets) > self.max_clients:
            self._buckets.popitem(last=False)


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
        request_headers = dict(scope.get("headers") or [])
        tls = is_tls(scope, request_headers, self.settings)

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
