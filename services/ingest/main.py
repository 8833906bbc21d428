"""Ingest: population extracts from the case systems, validated, classified and pseudonymised."""

from __future__ import annotations

from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI

from services.ingest import jobs, partitions, rounds
from services.ingest.api import router
from services.ingest.config import IngestSettings
from services.ingest.errors import install_errors
from services.ingest.handlers import HANDLERS
from services.ingest.models import AUDIT, BUS
from services.ingest.privacy import api as privacy_api
from services.ingest.privacy.keys import run_reencryption
from services.ingest.privacy.scheduler import run_retention_clock
from services.ingest.round_api import router as round_router
from shared.app import install_common
from shared.audit import install_audit
from shared.runtime import ServiceRuntime

MIGRATIONS = Path(__file__).parent / "migrations"


def create_app(settings: IngestSettings | None = None) -> FastAPI:
    settings = settings or IngestSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        # Upload jobs run in the background of every replica; the job table is their queue.
        async with ServiceRuntime(
            settings,
            tables=BUS,
            migrations_dir=MIGRATIONS,
            # Its share of privacy requests, and the sampled citizens' contacts for dispatch.
            handlers=HANDLERS,
            workers={
                "extract-jobs": jobs.run_worker,
                "retention-clock": run_retention_clock,
                "cpr-reencryption": run_reencryption,
                "citizen-partitions": partitions.run_partition_cleanup,
                # Rounds whose invitation or end of fieldwork has come move on; definitions
                # without an event yet (the migration's) are published.
                "round-phase-clock": rounds.run_phase_clock,
            },
        ) as runtime:
            app.state.runtime = runtime
            yield

    app = FastAPI(title="Borgerblik ingest", version="1", lifespan=lifespan)
    app.state.settings = settings
    install_common(app, settings)
    install_audit(app, AUDIT)
    install_errors(app)
    app.include_router(round_router)
    app.include_router(router)
    app.include_router(privacy_api.router)
    return app
