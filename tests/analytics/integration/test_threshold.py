"""The suppression threshold is one setting (``SUPPRESSION_THRESHOLD``, AnalyticsSettings), 5 by
KL's rule, and it is the one every published table is decided with: set to 3, cells of 3 and 4
respondents are published and the tables say 3; at 5 none below 5 is. Over HTTP, against real
PostgreSQL, with the answers written by the service's own handlers."""

from __future__ import annotations

from collections import Counter

from services.analytics.config import AnalyticsSettings
from services.analytics.domain.suppression import CAUTION_BELOW, SUPPRESSION_THRESHOLD
from services.analytics.handlers import on_invitations_sent, on_responses_submitted, on_sample_drawn
from services.analytics.main import MIGRATIONS, create_app
from services.analytics.models import BUS
from services.analytics.synthetic import synthetic_round
from shared.bus import UnitOfWork
from shared.db import make_engine, make_sessionmaker, migrate
from shared.events import Envelope
from shared.testing.fixtures import bearer, running_app, settings_from_env

KOMMUNER = ["101", "147", "751"]


def test_kls_threshold_is_the_default():
    assert SUPPRESSION_THRESHOLD == 5 and CAUTION_BELOW == 20
    assert AnalyticsSettings.model_fields["suppression_threshold"].default == SUPPRESSION_THRESHOLD
    assert AnalyticsSettings.model_fields["caution_below"].default == CAUTION_BELOW


async def write_round(database_url: str, round_id: str):
    engine = make_engine(database_url)
    await migrate(engine, MIGRATIONS, "analytics")
    sessions = make_sessionmaker(engine)
    # seed 13: 101 has a stratum of 3 respondents next to strata of 23 and more
    synthetic = synthetic_round(round_id, KOMMUNER, respondents=300, seed=13, questions=("q1", "q13"))

    def wrapped(events):
        return [(Envelope.wrap(e, source="test", correlation_id="threshold"), e) for e in events]

    try:
        for sample in synthetic.samples:
            async with UnitOfWork(sessions, BUS, source="test") as uow:
                await on_sample_drawn(uow, *wrapped([sample])[0])
                await uow.commit()
        for handler, events in ((on_invitations_sent, synthetic.invitations), (on_responses_submitted, synthetic.responses)):
            async with UnitOfWork(sessions, BUS, source="test") as uow:
                await handler(uow, wrapped(events))
                await uow.commit()
    finally:
        await engine.dispose()
    return Counter((r.kommunekode, r.maalgruppe) for r in synthetic.responses)


async def published_cells(settings, round_id: str, operator: str, reader: str) -> tuple[dict, int]:
    async with running_app(create_app(settings)) as client:
        r = await client.post(f"/rounds/{round_id}/releases", json={"phase": "final"}, headers=bearer(operator))
        assert r.status_code == 201, r.text
        r = await client.get(f"/rounds/{round_id}/response-rates/detail", params={"dimension": "maalgruppe"}, headers=bearer(reader))
        assert r.status_code == 200, r.text
        body = r.json()
        cells = {(row["kommunekode"], row["level"]): row for row in body["rows"]
                 if row["kommunekode"] != "national" and row["level"] != "total"}
        return cells, body["suppression_threshold"]


async def test_the_configured_threshold_decides_every_cell(service_env, dev_issuer):
    operator = dev_issuer.mint("kl-operator", ["rounds:admin", "aggregates:read", "kommuner:all"])
    reader = dev_issuer.mint("kl", ["aggregates:read", "kommuner:all"])
    # The same answers in two rounds, one released under each threshold (a release is decided
    # against the round's earlier ones, so one round cannot show both).
    truth = await write_round(service_env["DATABASE_URL"], "threshold-3")
    assert await write_round(service_env["DATABASE_URL"], "threshold-5") == truth
    small = {cell for cell, n in truth.items() if 3 <= n <= 4}
    assert small  # the round has cells of 3-4 respondents

    cells, threshold = await published_cells(settings_from_env(AnalyticsSettings, service_env, suppression_threshold=3), "threshold-3", operator, reader)
    assert threshold == 3
    shown = {cell: row["answers"] for cell, row in cells.items() if not row["suppressed"]}
    assert all(n >= 3 and n == truth[cell] for cell, n in shown.items())
    assert small & set(shown), "a cell of 3-4 respondents is published under threshold 3"

    cells, threshold = await published_cells(settings_from_env(AnalyticsSettings, service_env), "threshold-5", operator, reader)
    assert threshold == 5
    shown = {cell: row["answers"] for cell, row in cells.items() if not row["suppressed"]}
    assert shown and all(n >= 5 and n == truth[cell] for cell, n in shown.items())
    assert not small & set(shown)
