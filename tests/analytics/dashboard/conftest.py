"""One analytics service per module, fed two synthetic rounds (real PostgreSQL, real broker):
producing the events and waiting for the tallies is the slow part, every test only reads."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from dashboard_helpers import ROUNDS, demo_round
from services.analytics.builder import round_info
from services.analytics.config import AnalyticsSettings
from services.analytics.main import create_app
from services.analytics.models import PopulationCell
from shared.testing.fixtures import (
    bearer,
    create_test_database,
    make_service_env,
    publish_events,
    running_app,
    settings_from_env,
)
from shared.testing.round import round_defined_event


async def produce(bootstrap: str, prefix: str, payloads) -> None:
    await publish_events(bootstrap, prefix, payloads)


async def wait_for_population(app, round_id: str, cells: int, timeout: float = 60) -> None:
    """Until analytics holds the round's population cells (frame.margins): they come on a topic
    of their own, so the answers' release would otherwise be cut with or without them."""
    async with asyncio.timeout(timeout):
        while True:
            async with app.state.runtime.uow() as uow:
                held = await uow.session.scalar(
                    sa.select(sa.func.count()).select_from(PopulationCell).where(PopulationCell.round_id == round_id)
                )
            if held == cells:
                return
            await asyncio.sleep(0.2)


async def wait_for_counts(client, token: str, round_id: str, invited: int, answers: int, timeout: float = 90) -> None:
    """Until the round's latest release has every invitation and answer and no change came
    after it (the release loop cuts one once the round has been quiet)."""
    async with asyncio.timeout(timeout):
        while True:
            r = await client.get(f"/rounds/{round_id}/response-rates", headers=bearer(token))
            rows = r.json()["rows"] if r.status_code == 200 else []
            if rows and rows[0].get("invited") == invited and rows[0].get("answers") == answers:
                break
            await asyncio.sleep(0.2)
        app = client._transport.app  # noqa: SLF001 - the test's own app
        while True:
            async with app.state.runtime.uow() as uow:
                current = await round_info(uow, round_id)
                listed = await app.state.releases.list(uow, round_id)
            if listed and listed[-1].version == current.version:
                return
            await asyncio.sleep(0.2)


@pytest.fixture(scope="module")
async def module_env(postgres_admin_url, kafka_bootstrap, dev_issuer, data_keys, tmp_path_factory):
    database_url = await create_test_database(postgres_admin_url)
    prefix = f"t{uuid.uuid4().hex[:10]}."
    return make_service_env(database_url, kafka_bootstrap, prefix, dev_issuer, data_keys, tmp_path_factory.mktemp("dashboard"))


@pytest.fixture(scope="module")
def tokens(dev_issuer) -> dict[str, str]:
    return {
        "kl": dev_issuer.mint("kl", ["aggregates:read", "kommuner:all"]),
        "aarhus": dev_issuer.mint("aarhus", ["aggregates:read"], ["751"]),
        "kbh": dev_issuer.mint("kbh", ["aggregates:read"], ["101"]),
        "noscope": dev_issuer.mint("x", ["extracts:write"], ["751"]),
        "operator": dev_issuer.mint("kl-operator", ["rounds:admin", "aggregates:read", "kommuner:all"]),
    }


@pytest.fixture(scope="module")
async def app_and_client(module_env, kafka_bootstrap, tokens):
    # The release loop's preliminaries (0.3 s without a change) publish response rates only, so
    # however the answers arrive in batches (a loaded machine cuts more releases on the way), no
    # release with answers is held against an earlier one; once all are counted the operator
    # cuts the one preliminary release with every cell that the tests read.
    app = create_app(settings_from_env(AnalyticsSettings, module_env, publication_release_quiet_seconds=0.3))
    async with running_app(app) as client:
        prefix = module_env["KAFKA_TOPIC_PREFIX"]
        now = datetime.now(UTC)
        for round_id in ROUNDS:
            rnd, responses = demo_round(round_id)
            # As ingest defines it: drawn, scheduled, and in fieldwork since an hour ago.
            definition = round_defined_event(
                round_id, phase="in_fieldwork", delivery_deadline=now - timedelta(days=1), invitation_at=now - timedelta(hours=1),
                fieldwork_ends_at=now + timedelta(days=14),
            )
            await produce(kafka_bootstrap, prefix, [definition])
            await produce(kafka_bootstrap, prefix, rnd.samples)
            await produce(kafka_bootstrap, prefix, rnd.margins)
            await wait_for_population(app, round_id, sum(len(e.cells) for e in rnd.margins))
            await produce(kafka_bootstrap, prefix, rnd.invitations)
            await produce(kafka_bootstrap, prefix, responses)
            await wait_for_counts(client, tokens["kl"], round_id, len(rnd.invitations), len(responses))
            r = await client.post(f"/rounds/{round_id}/releases", json={"phase": "preliminary", "scope": "all"},
                                  headers=bearer(tokens["operator"]))
            assert r.status_code == 201, r.text
        yield app, client


@pytest.fixture
def client(app_and_client):
    _, client = app_and_client
    client.cookies.clear()
    return client


@pytest.fixture
def app(app_and_client):
    return app_and_client[0]
