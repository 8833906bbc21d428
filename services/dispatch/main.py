"""Dispatch: survey links, invitation letters and reminders through the configured channels."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

from fastapi import FastAPI

from services.dispatch.api import router
from services.dispatch.channel_setup import build_channels, close_channels
from services.dispatch.channels.base import Channel
from services.dispatch.config import DispatchSettings
from services.dispatch.errors import install_errors
from services.dispatch.followup import FollowupWorker
from services.dispatch.followup_api import router as followup_router
from services.dispatch.handlers import lock_in_order, make_handlers
from services.dispatch.models import AUDIT, BUS
from services.dispatch.privacy import privacy_rules
from services.dispatch.progress import ProgressPublisher
from services.dispatch.sender import Sender, make_executor
from services.dispatch.stages import StageTimes
from shared.app import install_common
from shared.audit import install_audit
from shared.privacy import privacy_handlers
from shared.runtime import ServiceRuntime

MIGRATIONS = Path(__file__).parent / "migrations"


def create_app(
    settings: DispatchSettings | None = None,
    *,
    channels: dict[str, Channel] | None = None,
    sender_class: Callable[..., Sender] = Sender,
) -> FastAPI:
    """`channels` and `sender_class` let tests put wrappers (fault injection) around the real ones."""
    settings = settings or DispatchSettings()
    stages = StageTimes()  # wall time per stage (planning, sending), read by the national bench

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        chosen = channels if channels is not None else build_channels(settings)
        executor = make_executor(settings)
        sender = sender_class(settings, chosen, executor)
        sender.stages = stages
        app.state.sender = sender
        try:
            async with ServiceRuntime(
                settings,
                tables=BUS,
                migrations_dir=MIGRATIONS,
                handlers={**make_handlers(settings, stages), **privacy_handlers(privacy_rules(settings))},
                prepare_batch=lock_in_order,
                workers={"sender": sender.run, "progress": ProgressPublisher(settings.progress_interval_seconds).run,
                         "followup": FollowupWorker(settings.followup_interval_seconds, settings.followup_lead_seconds,
                                                    lambda: datetime.now(UTC)).run},
            ) as runtime:
                app.state.runtime = runtime
                yield
        finally:
            if executor is not None:
                executor.shutdown(cancel_futures=True)
            if channels is None:
                await close_channels(chosen)

    app = FastAPI(title="Borgerblik dispatch", version="1", lifespan=lifespan)
    app.state.settings = settings
    app.state.stages = stages
    install_common(app, settings)
    install_audit(app, AUDIT)
    install_errors(app)
    app.include_router(router)
    app.include_router(followup_router)
    return app
