"""Analytics: indicator tables from the events, safe to publish, served to BI tools."""

from __future__ import annotations

from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI

from services.analytics.api import odata_router, router
from services.analytics.dashboard import dashboard_router
from services.analytics.handlers import HANDLERS
from services.analytics.config import AnalyticsSettings
from services.analytics.models import BUS
from services.analytics.service import PublicationCache
from shared.app import install_common
from shared.runtime import ServiceRuntime

MIGRATIONS = Path(__file__).parent / "migrations"


def create_app(settings: AnalyticsSettings | None = None) -> FastAPI:
    settings = settings or AnalyticsSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        async with ServiceRuntime(settings, tables=BUS, migrations_dir=MIGRATIONS, handlers=HANDLERS) as runtime:
            app.state.runtime = runtime
            app.state.publications = PublicationCache(runtime.uow, settings.suppression_threshold, settings.caution_below)
            yield

    app = FastAPI(title="Borgerblik analytics", version="1", lifespan=lifespan)
    app.state.settings = settings
    install_common(app, settings)
    app.include_router(router)
    app.include_router(odata_router)
    app.include_router(dashboard_router)
    return app
