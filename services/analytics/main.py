"""Analytics: indicator tables from the events, safe to publish, served to BI tools."""

from __future__ import annotations

from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from services.analytics.api import API_DESCRIPTION, odata_router, router
from services.analytics.bi_keys.router import router as bi_keys_router
from services.analytics.builder import ProcessBuilder, ThreadBuilder
from services.analytics.dashboard import dashboard_router, install_dashboard
from services.analytics.handlers import HANDLERS
from services.analytics.config import AnalyticsSettings
from services.analytics.errors import install_errors
from services.analytics.models import AUDIT, BUS
from services.analytics.overview.handlers import HANDLERS as OVERVIEW_HANDLERS
from services.analytics.overview.router import api_router as overview_api, page_router as overview_page
from services.analytics.privacy import RULES as PRIVACY
from services.analytics.service import Releases, RoundChanges
from shared.app import install_common
from shared.audit import install_audit
from shared.privacy import privacy_handlers
from shared.runtime import ServiceRuntime

MIGRATIONS = Path(__file__).parent / "migrations"


class StartPage:
    """A person who opens the service's address (``/``) lands on the dashboard's start page,
    which asks for the login first. A redirect before routing, not a route: it serves nothing of
    its own, so it needs no place in the API's description or its authorisation rules."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == "/" and scope["method"] in ("GET", "HEAD"):
            await RedirectResponse("/dashboard/", status_code=307)(scope, receive, send)
            return
        await self.app(scope, receive, send)


def create_app(settings: AnalyticsSettings | None = None) -> FastAPI:
    settings = settings or AnalyticsSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        builders: list = []
        try:
            async with ServiceRuntime(settings, tables=BUS, migrations_dir=MIGRATIONS,
                                      handlers={**HANDLERS, **OVERVIEW_HANDLERS, **privacy_handlers(PRIVACY)},
                                      workers=dashboard_workers) as runtime:
                app.state.runtime = runtime
                # Builds in a worker process (see builder.py); the in-thread builder on the
                # service's own pool when disabled.
                builder = (
                    ProcessBuilder(runtime.engine.url.render_as_string(hide_password=False))
                    if settings.publication_build_process
                    else ThreadBuilder(runtime.uow)
                )
                builders.append(builder)
                app.state.releases = releases = Releases(
                    runtime.uow,
                    settings.suppression_threshold,
                    settings.caution_below,
                    quiet=settings.publication_release_quiet_seconds,
                    interval=settings.publication_release_interval_seconds,
                    poll=settings.publication_release_poll_seconds,
                    preliminary_scope=settings.publication_preliminary_scope,
                    builder=builder,
                )
                builder.start()
                app.state.round_changes = changes = RoundChanges(
                    runtime.engine.url.render_as_string(hide_password=False), releases.round_changed
                )
                # Made after the runtime (they need its unit of work), supervised by it like its
                # own loops, and stopped with them.
                runtime.spawn("releases", releases.run)
                runtime.spawn("round-changes", changes.run)
                yield
        finally:
            for builder in builders:  # after the loops that use it have stopped
                builder.close()

    app = FastAPI(title="Borgerblik analytics", version="1", description=API_DESCRIPTION, lifespan=lifespan)
    app.state.settings = settings
    # Before the common middleware, so the dashboard's session and CSRF layers sit inside it.
    dashboard_workers = install_dashboard(app)
    install_common(app, settings)
    install_audit(app, AUDIT)
    install_errors(app)
    app.add_middleware(StartPage)
    app.include_router(router)
    app.include_router(odata_router)
    app.include_router(bi_keys_router)
    app.include_router(dashboard_router)
    app.include_router(overview_api)
    app.include_router(overview_page)

    return app
