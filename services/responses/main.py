"""Responses: the citizen's questionnaire, one answer per link."""

from __future__ import annotations

from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from services.responses import error_pages, interview_web, web
from services.responses.api import admin, router
from services.responses.config import ResponsesSettings
from services.responses.errors import install_errors
from services.responses.formstore import FormStore, dsn_of
from services.responses.handlers import make_handlers
from services.responses.models import AUDIT, BUS
from services.responses.privacy import RULES as PRIVACY
from services.responses.protection import GuessLimiter, SecurityHeaders
from shared.app import install_common
from shared.audit import install_audit
from shared.privacy import privacy_handlers
from shared.runtime import ServiceRuntime

HERE = Path(__file__).parent
MIGRATIONS = HERE / "migrations"
# Det Fælles Designsystem's compiled CSS, fonts and icons, vendored from the npm package dkfds
# (see frontend/vendor_dkfds.sh and static/dkfds/LICENSE.md), so no npm is needed to run.
STATIC = HERE / "static"


def create_app(settings: ResponsesSettings | None = None) -> FastAPI:
    settings = settings or ResponsesSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        async with ServiceRuntime(settings, tables=BUS, migrations_dir=MIGRATIONS, handlers={**make_handlers(settings), **privacy_handlers(PRIVACY)}) as runtime:
            store = await FormStore.connect(dsn_of(runtime.engine), settings, on_commit=runtime.relay.nudge)
            app.state.runtime, app.state.form_store = runtime, store
            try:
                yield
            finally:
                await store.close()

    app = FastAPI(title="Borgerblik responses", version="1", lifespan=lifespan)
    app.state.settings = settings
    app.state.limiter = GuessLimiter.from_settings(settings)
    # Inside the common middleware: the questionnaire's own headers (its strict CSP) are set
    # first, and the common ones (shared/app.py) only fill in what a page did not send.
    app.add_middleware(SecurityHeaders, settings=settings)
    install_common(app, settings)
    install_audit(app, AUDIT)
    install_errors(app)
    # Outermost: whatever answers a citizen's path with an error (routing, validation, the edge
    # rule, a fault) is a Danish page (error_pages.py).
    app.add_exception_handler(Exception, error_pages.server_error)
    app.add_middleware(error_pages.CitizenErrorPages)
    # The citizen's pages first: routes are tried in order, and they take nearly all the traffic.
    app.include_router(web.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.include_router(router)
    app.include_router(admin)
    app.include_router(interview_web.router)
    return app
