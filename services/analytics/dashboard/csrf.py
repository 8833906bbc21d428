"""One CSRF defence for every dashboard form (login, logout, targets): `asgi-csrf`'s signed
double-submit token. A page that renders a form puts :func:`token` in a hidden ``csrftoken``
field; asgi-csrf sets the matching cookie and refuses, before any route runs, a form post under
/dashboard whose field does not match the cookie. Posts with a bearer token (API clients) are
not forms and pass; the login and logout are checked even from a browser without cookies (no
login CSRF).

Why asgi-csrf: it reads the token from the form body, so plain HTML forms work (the dashboard
has no script: its CSP forbids one); ``starlette-csrf`` reads only a request header, which a form
cannot send. The site-wide Origin / Sec-Fetch-Site check (shared/app.py ``BrowserProtection``)
stays in front of it for every service.

Cookies as for the session (:mod:`.sessions`): ``__Host-bb_csrf`` over HTTPS, ``bb_csrf``
with ``Path=/dashboard`` over plain HTTP. Tokens are signed with ``DASHBOARD_SESSION_KEY``
(unset: a random key per process, so a form loaded before a restart is refused once).
"""

from __future__ import annotations

import html
import os
from contextvars import ContextVar

from asgi_csrf import asgi_csrf
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from services.analytics.dashboard.sessions import PATH_PREFIX

HTTP_COOKIE = "bb_csrf"
HTTPS_COOKIE = "__Host-bb_csrf"
FIELD = "csrftoken"  # asgi-csrf's form field
ALWAYS = {f"{PATH_PREFIX}/login", f"{PATH_PREFIX}/logout"}

_REFUSED = """<!doctype html>
<html lang="da"><head><meta charset="utf-8"><title>Formularen blev afvist – Borgerblik</title>
<link rel="stylesheet" href="/dashboard/static/dashboard.css"></head>
<body><main id="main"><h1>Formularen blev afvist</h1>
<p>Formularen kunne ikke godkendes: den er for gammel, eller den blev ikke sendt fra dashboardet.
Gå tilbage, genindlæs siden, og prøv igen.</p>
<p><a href="{home}">Til dashboardet</a></p></main></body></html>"""


async def _refused(scope: Scope, send: Send, message_id) -> None:
    body = _REFUSED.format(home=html.escape(PATH_PREFIX + "/")).encode()
    await send({"type": "http.response.start", "status": 403, "headers": [
        (b"content-type", b"text/html; charset=utf-8"), (b"cache-control", b"no-store"),
        (b"content-security-policy", b"default-src 'none'; style-src 'self'; frame-ancestors 'none'"),
    ]})
    await send({"type": "http.response.body", "body": body})


def _secret() -> str:
    return os.environ.get("DASHBOARD_SESSION_KEY") or os.urandom(32).hex()


# The scope this middleware was called with: asgi-csrf hands the app a copy of it, so what the
# router sets there (the matched route, which the middleware outside reads: logs, the tests'
# route recorder) is copied back.
_OUTER_SCOPE: ContextVar[Scope | None] = ContextVar("dashboard_csrf_outer_scope", default=None)
_ROUTING_KEYS = ("route", "endpoint", "path_params")


class DashboardCsrf:
    """asgi-csrf for /dashboard, with the cookie of the request's scheme."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        common = {"signing_secret": _secret(), "always_protect": ALWAYS, "cookie_samesite": "Lax", "send_csrf_failed": _refused,
                  "skip_if_scope": lambda scope: not scope["path"].startswith(PATH_PREFIX)}
        self.http = asgi_csrf(self._routed, cookie_name=HTTP_COOKIE, cookie_path=PATH_PREFIX, cookie_secure=False, **common)
        self.https = asgi_csrf(self._routed, cookie_name=HTTPS_COOKIE, cookie_path="/", cookie_secure=True, **common)

    async def _routed(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self.app(scope, receive, send)
        finally:
            outer = _OUTER_SCOPE.get()
            if outer is not None and outer is not scope:
                outer.update({key: scope[key] for key in _ROUTING_KEYS if key in scope})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(PATH_PREFIX):
            await self.app(scope, receive, send)
            return
        token = _OUTER_SCOPE.set(scope)
        try:
            await (self.https if scope.get("scheme") == "https" else self.http)(scope, receive, send)
        finally:
            _OUTER_SCOPE.reset(token)


def token(request: Request) -> str:
    """The token for a form on this page (asgi-csrf sets its cookie with the answer)."""
    return request.scope["csrftoken"]()
