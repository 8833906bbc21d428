"""Sampling: the stratified sample per round, with design weights."""

from __future__ import annotations

from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI

from services.sampling.api import router
from services.sampling.handlers import HANDLERS
from services.sampling.config import SamplingSettings
from services.sampling.errors import install_errors
from services.sampling.models import AUDIT, BUS
from services.sampling.privacy import RULES as PRIVACY
from shared.app import install_common
from shared.audit import install_audit
from shared.privacy import privacy_handlers
from shared.runtime import ServiceRuntime

MIGRATIONS = Path(__file__).parent / "migrations"


def create_app(settings: SamplingSettings | None = None) -> FastAPI:
    settings = settings or SamplingSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        async with ServiceRuntime(settings, tables=BUS, migrations_dir=MIGRATIONS, handlers={**HANDLERS, **privacy_handlers(PRIVACY)}) as runtime:
            app.state.runtime = runtime
            yield

    app = FastAPI(title="Borgerblik sampling", version="1", lifespan=lifespan)
    app.state.settings = settings
    install_common(app, settings)
    install_audit(app, AUDIT)
    install_errors(app)
    app.include_router(router)
    return app
