"""The round id has one pattern (shared.events.ROUND_ID_PATTERN): every route of every service
that takes a round id in its path, and ingest's round definition, use it."""

from __future__ import annotations

import re

import pytest

from services.ingest.schemas import RoundCreate
from shared.events import ROUND_ID_PATTERN
from tools import authz_rules as rules


@pytest.mark.parametrize("service", sorted(rules.SERVICES))
def test_every_round_id_in_a_path_is_the_shared_pattern(service):
    app = rules.create_app(service, rules.offline_env())
    seen = 0
    for _method, path, operation in rules.openapi_operations(app.openapi()):
        for parameter in operation.get("parameters", []):
            if parameter["name"] == "round_id" and parameter["in"] == "path":
                assert parameter["schema"].get("pattern") == ROUND_ID_PATTERN, path
                seen += 1
    assert seen >= 1


def test_the_round_definition_takes_the_same_pattern():
    assert RoundCreate.model_fields["round_id"].metadata[0].pattern == ROUND_ID_PATTERN
    assert re.match(ROUND_ID_PATTERN, "r-2025.1") and not re.match(ROUND_ID_PATTERN, "-r") and not re.match(ROUND_ID_PATTERN, "r" * 65)
