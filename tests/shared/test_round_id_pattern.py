"""The round id has one pattern (shared.events.ROUND_ID_PATTERN): every route of ingest, sampling
and dispatch that takes a round id in its path, and ingest's round definition, use it."""

from __future__ import annotations

import re

from fastapi import FastAPI

from services.dispatch.api import router as dispatch_router
from services.ingest.api import router as ingest_router
from services.ingest.privacy.api import router as privacy_router
from services.ingest.round_api import router as round_router
from services.ingest.schemas import RoundCreate
from services.sampling.api import router as sampling_router
from shared.events import ROUND_ID_PATTERN


def test_every_round_id_in_a_path_is_the_shared_pattern():
    seen = 0
    for router in (ingest_router, privacy_router, round_router, sampling_router, dispatch_router):
        app = FastAPI()
        app.include_router(router)
        for path, operations in app.openapi()["paths"].items():
            for operation in operations.values():
                for parameter in operation.get("parameters", []):
                    if parameter["name"] == "round_id" and parameter["in"] == "path":
                        assert parameter["schema"].get("pattern") == ROUND_ID_PATTERN, path
                        seen += 1
    assert seen >= 20


def test_the_round_definition_takes_the_same_pattern():
    assert RoundCreate.model_fields["round_id"].metadata[0].pattern == ROUND_ID_PATTERN
    assert re.match(ROUND_ID_PATTERN, "r-2025.1") and not re.match(ROUND_ID_PATTERN, "-r") and not re.match(ROUND_ID_PATTERN, "r" * 65)
