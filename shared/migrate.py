"""Apply one service's migrations and exit: the production migration step.

``python -m shared.migrate ingest`` (uses DATABASE_URL). Services also migrate on start-up
unless MIGRATE_ON_START=false; both paths take the same advisory lock.
"""

from __future__ import annotations

import asyncio
import importlib
import sys
from pathlib import Path

from shared.db import make_engine, migrate
from shared.testing.processes import SERVICES


async def run(service: str) -> None:
    config = importlib.import_module(f"services.{service}.config")
    settings_cls = next(
        value for name, value in vars(config).items() if name.endswith("Settings") and getattr(value, "__module__", "") == config.__name__
    )
    settings = settings_cls()
    if not settings.database_url:
        sys.exit("DATABASE_URL is not set")
    engine = make_engine(settings.database_url)
    try:
        await migrate(engine, Path(importlib.import_module(f"services.{service}").__file__).parent / "migrations", settings.schema_name)
    finally:
        await engine.dispose()
    print(f"{service}: migrated")


if __name__ == "__main__":
    if len(sys.argv) != 2 or sys.argv[1] not in SERVICES:
        sys.exit(f"usage: python -m shared.migrate {{{','.join(SERVICES)}}}")
    asyncio.run(run(sys.argv[1]))
