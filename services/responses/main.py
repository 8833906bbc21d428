"""Responses: the citizen's questionnaire, one answer per link."""

from __future__ import annotations

from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI

from services.responses.api import router
from services.responses.handlers import HANDLERS
from services.responses.config import ResponsesSettings
from services.responses.models import BUS
from shared.app import install_common
from shared.runtime import ServiceRuntime

MIGRATIONS = Path(__file__).parent / "migrations"


def create_app(settings: ResponsesSettings | None = None) -> FastAPI:
    settings = settings or ResponsesSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        async with ServiceRuntime(settings, tables=BUS, migrations_dir=MIGRATIONS, handlers=HANDLERS) as runtime:
            app.state.runtime = runtime
            yield

    app = FastAPI(title="Borgerblik responses", version="1", lifespan=lifespan)
    app.state.settings = settings
    install_common(app, settings)
    app.include_router(router)
    return app
