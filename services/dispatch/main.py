"""Dispatch: survey links, invitation letters and reminders through the configured channels."""

from __future__ import annotations

from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI

from services.dispatch.api import router
from services.dispatch.channels.devsink import DevSinkChannel
from services.dispatch.config import DispatchSettings
from services.dispatch.handlers import make_handlers
from services.dispatch.models import BUS
from services.dispatch.sender import sender_worker
from shared.app import install_common
from shared.runtime import ServiceRuntime

MIGRATIONS = Path(__file__).parent / "migrations"


def create_app(settings: DispatchSettings | None = None) -> FastAPI:
    settings = settings or DispatchSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        channel = DevSinkChannel(settings.dev_sink_dir)
        async with ServiceRuntime(
            settings,
            tables=BUS,
            migrations_dir=MIGRATIONS,
            handlers=make_handlers(settings),
            workers={"sender": sender_worker(settings, channel)},
        ) as runtime:
            app.state.runtime = runtime
            yield
        await channel.aclose()

    app = FastAPI(title="Borgerblik dispatch", version="1", lifespan=lifespan)
    app.state.settings = settings
    install_common(app, settings)
    app.include_router(router)
    return app
