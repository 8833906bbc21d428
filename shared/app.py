"""The FastAPI pieces every service has: health, metrics, request timing, correlation ids, and the
edge rule for input PostgreSQL cannot hold (shared/edge.py)."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Path, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel
from secure import ContentSecurityPolicy, Secure, StrictTransportSecurity, XContentTypeOptions, XFrameOptions
from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.auth.verify import CachingAuthenticator
from shared.bus import UnitOfWork
from shared.db import database_unavailable
from shared.edge import EdgeInput, database_refused
from shared.events import ROUND_ID_PATTERN
from shared.observability import REQUEST_LATENCY, configure_logging, correlation_id_var
from shared.runtime import ServiceRuntime
from shared.settings import ServiceSettings


# The round id in a route's path (shared.events.ROUND_ID_PATTERN): anything else is a 422 naming it.
RoundId = Annotated[str, Path(pattern=ROUND_ID_PATTERN)]


def _runtime(request: Request) -> ServiceRuntime:
    return request.app.state.runtime


# What a route declares it needs (``runtime: Runtime``, ``uow: Uow``): the service's runtime, set
# by its lifespan, and a unit of work around the route function only (the transaction ends, rolled
# back unless the service function committed, before the answer is sent).
Runtime = Annotated[ServiceRuntime, Depends(_runtime)]


async def _uow(runtime: Runtime) -> AsyncIterator[UnitOfWork]:
    async with runtime.uow() as uow:
        yield uow


Uow = Annotated[UnitOfWork, Depends(_uow, scope="function")]


class ErrorDetail(BaseModel):
    """The body of our 4xx answers: FastAPI's ``{"detail": ...}``, where detail is a message, a
    list of field errors, or a structured report (e.g. row errors of a rejected delivery)."""

    detail: str | list[Any] | dict[str, Any]


# A service's error table: exception class -> (status, the detail it answers, from the exception).
ErrorTable = Mapping[type[Exception], tuple[int, Callable[[Any], Any]]]


def install_error_table(app: FastAPI, errors: ErrorTable) -> None:
    """Answer each exception of ``errors`` with its status and ``{"detail": ...}`` (FastAPI's
    body), so a service's routers only call and return. A subclass's own row wins over its base's."""
    for error, (status_code, detail) in errors.items():
        app.add_exception_handler(error, _error_answer(status_code, detail))


def _error_answer(status_code: int, detail: Callable[[Any], Any]):
    async def answer(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": detail(exc)}, status_code=status_code)

    return answer


class TimingAndCorrelation:
    """Request latency per route and a correlation id per request (echoed in x-correlation-id)."""

    def __init__(self, app: ASGIApp, service: str) -> None:
        self.app, self.service = app, service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = next((v for n, v in scope["headers"] if n == b"x-correlation-id"), b"").decode("latin-1")
        # Accept only an opaque id from callers; never let free text (or personal data) in.
        valid = incoming and len(incoming) <= 64 and incoming.replace("-", "").isalnum()
        correlation_id = incoming if valid else str(uuid.uuid4())
        status, started = 500, time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-correlation-id", correlation_id.encode())]
            await send(message)

        token = correlation_id_var.set(correlation_id)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            correlation_id_var.reset(token)
            route = scope.get("route")
            REQUEST_LATENCY.labels(self.service, scope["method"], getattr(route, "path", "unmatched"), str(status)).observe(
                time.perf_counter() - started
            )


# --- browser protection: every page of every service --------------------------------------------------

# Header values from the `secure` library. Its own ASGI middleware is not used: it overwrites the
# headers a page set itself (the questionnaire's and the dashboard's stricter CSPs) and sends HSTS
# over plain HTTP too; here a page's own header wins and HSTS goes only with HTTPS.
_FRAME_AND_SNIFF = {
    name.lower().encode(): value.encode()
    for name, value in Secure(
        xfo=XFrameOptions().deny(),
        csp=ContentSecurityPolicy().frame_ancestors("'none'"),
        xcto=XContentTypeOptions(),
    ).headers.items()
}
HSTS_MAX_AGE = 31_536_000
_HSTS = {
    name.lower().encode(): value.encode()
    for name, value in Secure(hsts=StrictTransportSecurity().max_age(HSTS_MAX_AGE).include_subdomains()).headers.items()
}
_UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def _origin_host(value: bytes) -> bytes | None:
    """host[:port] of an Origin or Referer header; None for "null" or no URL."""
    value = value.strip()
    if b"://" not in value:
        return None
    return value.split(b"://", 1)[1].split(b"/", 1)[0].lower()


def _cross_site(headers: dict[bytes, bytes]) -> bool:
    """Whether the browser says the request comes from another site. Sec-Fetch-Site first (sent by
    current browsers whatever the page's Referrer-Policy); else an Origin, or a Referer, naming
    another host. An Origin of "null" (a page with Referrer-Policy no-referrer, like the
    questionnaire) and no header at all (an older browser, a script) decide nothing: SameSite
    cookies and the questionnaire's CSRF token stay the guard there."""
    fetch_site = headers.get(b"sec-fetch-site")
    if fetch_site is not None:
        return fetch_site.lower() not in (b"same-origin", b"none")
    host = headers.get(b"host", b"").lower()
    for name in (b"origin", b"referer"):
        claimed = headers.get(name)
        if claimed is not None and (origin := _origin_host(claimed)) is not None:
            return origin != host
    return False


class BrowserProtection:
    """Pure ASGI middleware on every service:

    - no page may be framed (X-Frame-Options DENY, CSP frame-ancestors 'none' unless the page
      sends its own CSP), no content sniffing, and HSTS on every answer over HTTPS (behind the
      ingress: its X-Forwarded-Proto, believed from TRUSTED_PROXIES only);
    - a form (any unsafe method) sent with cookies and without a bearer token must come from this
      site (``_cross_site``), else 403. That covers every cookie-authenticated form (the
      dashboard's, the questionnaire's) besides their SameSite cookies and the questionnaire's
      CSRF token; API clients send a bearer token, no cookie. The ingress must pass the Host
      header through (nginx: ``proxy_set_header Host $host``).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        if scope["method"] in _UNSAFE and b"cookie" in headers and not headers.get(b"authorization", b"").lower().startswith(b"bearer "):
            if _cross_site(headers):
                response = JSONResponse({"detail": "cross-site form refused: it was not sent from this site"}, status_code=403)
                await self._with_headers(response, scope, receive, send)
                return
        await self._with_headers(self.app, scope, receive, send)

    async def _with_headers(self, app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
        extra = {**_FRAME_AND_SNIFF, **(_HSTS if scope.get("scheme") == "https" else {})}

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                message["headers"] = [*message.get("headers", []), *((n, v) for n, v in extra.items() if n not in present)]
            await send(message)

        await app(scope, receive, send_with_headers)


# Seconds a caller is asked to wait when the database cannot be reached: a restart's crash
# recovery takes seconds.
DATABASE_RETRY_AFTER_SECONDS = 10


async def database_errors(request: Request, exc: Exception) -> Response:
    """A request whose database cannot be reached (down, restarting, a connection lost or
    refused: ``shared.db.database_unavailable``) is answered 503 with Retry-After, never 500: the
    same request succeeds once the database is back. Then the edge rule (``database_refused``):
    a value the database refuses as data is a 422; anything else stays a fault of ours."""
    if database_unavailable(exc):
        return JSONResponse({"detail": "the database cannot be reached right now; try again shortly"}, status_code=503,
                            headers={"Retry-After": str(DATABASE_RETRY_AFTER_SECONDS)})
    if isinstance(exc, DBAPIError):
        return await database_refused(request, exc)
    raise exc


def install_common(app: FastAPI, settings: ServiceSettings) -> None:
    configure_logging(settings.log_level, settings.log_json)
    app.state.authenticator = CachingAuthenticator(settings)
    service = settings.service_name

    # Input PostgreSQL cannot hold is the caller's error (422 naming the field), never a 500:
    # refused at the edge, and what only a column knows answered from the database's refusal.
    app.add_middleware(EdgeInput)
    app.add_middleware(BrowserProtection)
    # A database that cannot be reached is a 503 with Retry-After (the citizen's page says "prøv
    # igen om lidt"), whichever layer noticed: SQLAlchemy, asyncpg itself, or the socket.
    import asyncpg

    for unreachable in (DBAPIError, DisconnectionError, PoolTimeout, OSError,
                        asyncpg.exceptions.PostgresConnectionError, asyncpg.exceptions.OperatorInterventionError,
                        asyncpg.exceptions.InterfaceError):
        app.add_exception_handler(unreachable, database_errors)
    # A plain ASGI middleware: @app.middleware("http") (BaseHTTPMiddleware) adds a task and memory
    # streams to every request.
    app.add_middleware(TimingAndCorrelation, service=service)
    if route_log := os.environ.get("BORGERBLIK_ROUTE_LOG"):
        # Tests only: which routes answered with what (shared/testing/route_log.py). Unset, the
        # recorder is neither imported nor in the request path.
        from shared.testing.route_log import RouteRecorder

        app.add_middleware(RouteRecorder, service=service, directory=route_log)

    @app.get("/healthz", tags=["ops"], summary="200 when the database and the broker are reachable")
    async def healthz(request: Request) -> JSONResponse:
        runtime = getattr(request.app.state, "runtime", None)
        if runtime is None:
            return JSONResponse({"status": "starting"}, status_code=503)
        checks = await runtime.health()
        healthy = all(value == "ok" for value in checks.values())
        return JSONResponse({"status": "ok" if healthy else "unhealthy", **checks}, status_code=200 if healthy else 503)

    @app.get("/metrics", tags=["ops"], summary="Prometheus metrics", include_in_schema=False)
    async def metrics(request: Request) -> Response:
        runtime = getattr(request.app.state, "runtime", None)
        if runtime is not None:
            await runtime.relay.backlog()
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
