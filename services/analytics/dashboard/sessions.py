"""The dashboard's browser sessions, kept server-side: the cookie holds an opaque random id, the
session (principal, scopes, municipalities, created, last seen, expiry, idle timeout) lives in
``analytics.dashboard_session`` (migration a094), so it can be ended from here.

The cookie handling is `starsessions`' (load on demand, id regeneration, cookie flags, deleting
the cookie and the stored session when the session is cleared); this module adds its store for
PostgreSQL, which starsessions does not ship (it has cookie, memory and Redis stores), and the
rules starsessions leaves to the store:

- an absolute lifetime (``DASHBOARD_SESSION_SECONDS``) and an idle timeout
  (``DASHBOARD_SESSION_IDLE_SECONDS``), checked on every read; every dashboard answer moves
  "last seen";
- a session is created only by a login, under an id issued for it (:func:`begin`): a write under
  any other id only touches a session that still exists, so neither a planted id (session
  fixation) nor a request in flight when its session was ended brings a session back;
- the id is stored as its SHA-256: reading the table opens no session;
- ended sessions are purged by a supervised loop of the service (:func:`purge_worker`).

Cookies: over HTTPS ``__Host-bb_dashboard_session`` (``Secure``, ``Path=/``, no domain: the
browser refuses it from any other host or scheme); over plain HTTP (local development)
``bb_dashboard_session`` with ``Path=/dashboard`` and no ``Secure``, which a ``__Host-`` cookie
cannot do. Both ``HttpOnly`` and ``SameSite=Lax`` (a link to a dashboard page from a mail or the
intranet opens it logged in; every form carries a CSRF token, :mod:`.csrf`).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from pydantic_settings import BaseSettings, SettingsConfigDict
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Receive, Scope, Send
from starsessions import SessionMiddleware, SessionStore, get_session_id, load_session, regenerate_session_id

from services.analytics.dashboard.models import DashboardSession
from shared.auth import Principal

logger = logging.getLogger(__name__)

HTTP_COOKIE = "bb_dashboard_session"
HTTPS_COOKIE = "__Host-bb_dashboard_session"
PATH_PREFIX = "/dashboard"


class SessionSettings(BaseSettings):
    """``DASHBOARD_SESSION_*``."""

    model_config = SettingsConfigDict(env_prefix="DASHBOARD_SESSION_", extra="ignore")

    seconds: int = 8 * 3600  # from login to the end, however active
    idle_seconds: int = 30 * 60  # without a dashboard request
    purge_interval_seconds: float = 300.0


def _hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


def _alive(now: datetime):
    return sa.and_(DashboardSession.expires_at > now,
                   DashboardSession.last_seen_at + sa.func.make_interval(0, 0, 0, 0, 0, 0, DashboardSession.idle_seconds) > now)


class PostgresStore(SessionStore):
    """starsessions' store over the service's database (the app's runtime, once started)."""

    def __init__(self, app, settings: SessionSettings) -> None:
        self._app, self.settings = app, settings
        self._issued: set[str] = set()  # ids handed out by begin() and not yet written

    def _uow(self):
        return self._app.state.runtime.uow()

    def issue(self, session_id: str) -> None:
        self._issued.add(session_id)

    async def read(self, session_id: str, lifetime: int) -> bytes:
        async with self._uow() as uow:
            row = (await uow.session.execute(
                sa.select(DashboardSession).where(DashboardSession.id_hash == _hash(session_id), _alive(datetime.now(UTC)))
            )).scalar_one_or_none()
            if row is None:
                return b""
            return json.dumps({
                "sub": row.subject, "scopes": row.scopes, "kommuner": row.kommunekoder,
                "__metadata__": {"created": row.created_at.timestamp(), "last_access": row.last_seen_at.timestamp(), "lifetime": lifetime},
            }).encode()

    async def write(self, session_id: str, data: bytes, lifetime: int, ttl: int) -> str:
        now = datetime.now(UTC)
        async with self._uow() as uow:
            if session_id in self._issued:
                self._issued.discard(session_id)
                payload = json.loads(data)
                uow.session.add(DashboardSession(
                    id_hash=_hash(session_id), subject=payload["sub"], scopes=payload["scopes"], kommunekoder=payload["kommuner"],
                    created_at=now, last_seen_at=now, expires_at=now + timedelta(seconds=self.settings.seconds),
                    idle_seconds=self.settings.idle_seconds,
                ))
            else:
                await uow.session.execute(
                    sa.update(DashboardSession).where(DashboardSession.id_hash == _hash(session_id), _alive(now)).values(last_seen_at=now)
                )
            await uow.commit()
        return session_id

    async def remove(self, session_id: str) -> None:
        async with self._uow() as uow:
            await uow.session.execute(sa.delete(DashboardSession).where(DashboardSession.id_hash == _hash(session_id)))
            await uow.commit()

    async def remove_subject(self, subject: str) -> int:
        """Log out everywhere: every session of one principal."""
        async with self._uow() as uow:
            result = await uow.session.execute(sa.delete(DashboardSession).where(DashboardSession.subject == subject))
            await uow.commit()
        return result.rowcount


async def purge(uow_factory) -> int:
    """Delete every session past its expiry or its idle timeout; how many."""
    async with uow_factory() as uow:
        result = await uow.session.execute(sa.delete(DashboardSession).where(sa.not_(_alive(datetime.now(UTC)))))
        await uow.commit()
    return result.rowcount


def purge_worker(settings: SessionSettings):
    """A background loop for ServiceRuntime's supervised workers: purge every interval."""

    async def run(runtime) -> None:
        while True:
            purged = await purge(runtime.uow)
            if purged:
                logger.info("dashboard sessions purged", extra={"fields": {"sessions": purged}})
            await asyncio.sleep(settings.purge_interval_seconds)

    return run


class DashboardSessions:
    """starsessions' middleware for /dashboard, with the cookie of the request's scheme (above)."""

    def __init__(self, app: ASGIApp, store: PostgresStore) -> None:
        self.app = app
        common = {"store": store, "lifetime": store.settings.seconds, "rolling": False, "cookie_same_site": "lax"}
        self.http = SessionMiddleware(app, cookie_name=HTTP_COOKIE, cookie_path=PATH_PREFIX, cookie_https_only=False, **common)
        self.https = SessionMiddleware(app, cookie_name=HTTPS_COOKIE, cookie_path="/", cookie_https_only=True, **common)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(PATH_PREFIX):
            await self.app(scope, receive, send)
            return
        await (self.https if scope.get("scheme") == "https" else self.http)(scope, receive, send)


def store_of(connection: HTTPConnection) -> PostgresStore:
    return connection.app.state.dashboard_sessions


async def current(connection: HTTPConnection) -> tuple[Principal | None, bool]:
    """The session's principal, and whether the browser sent a session id (so a missing
    principal means an ended session, not a first visit)."""
    await load_session(connection)
    data = connection.session
    sent = get_session_id(connection) is not None
    if not data.get("sub"):
        return None, sent
    return Principal(subject=data["sub"], scopes=frozenset(data["scopes"]), kommunekoder=frozenset(data["kommuner"])), sent


async def begin(connection: HTTPConnection, principal: Principal) -> None:
    """After a login: a new session under a new id (any session the browser had is ended)."""
    await load_session(connection)
    store = store_of(connection)
    if (previous := get_session_id(connection)) is not None:
        await store.remove(previous)
    store.issue(regenerate_session_id(connection))
    connection.session.clear()
    connection.session.update({"sub": principal.subject, "scopes": sorted(principal.scopes), "kommuner": sorted(principal.kommunekoder)})


async def end(connection: HTTPConnection, everywhere: bool = False) -> None:
    """Logout: this session (starsessions deletes it and the cookie), or every session of its principal."""
    principal, _ = await current(connection)
    if everywhere and principal is not None:
        await store_of(connection).remove_subject(principal.subject)
    connection.session.clear()
