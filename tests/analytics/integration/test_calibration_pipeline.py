"""Calibrated estimates through the real pipeline: events in (sample.drawn strata, frame.margins,
invitations, answers), the round's estimation settings set over REST, the published rows out, and
every published calibrated figure equal to R's calibrate(calfun = "raking", bounds) + svymean /
svyby to 1e-9 (tests/analytics/unit/calibration_reference.R); the design-weighted figures stay
beside them, and the release names its lonely-stratum rule and its calibration."""

from __future__ import annotations

import asyncio
import math
import sys
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from services.analytics.config import AnalyticsSettings
from services.analytics.main import create_app
from shared.db import to_async_url
from shared.events import Bands, FrameMargins, InvitationSent, PopulationCell, ResponseSubmitted, SampleDrawn, StratumSummary
from shared.testing.fixtures import bearer, publish_events, running_app, settings_from_env

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
from test_analytics_calibration_vs_r import SIZES, make_round, run_r  # noqa: E402

ROUND = "2026-cal"
BOUNDS = (0.05, 2.5)
TOL = 1e-9
QUIET = {"publication_release_quiet_seconds": 0.3, "publication_preliminary_scope": "all"}
VALUE = {"1": 1, "2": 2, "3": 3, "4": 4, "5": 5, "dk": "ved_ikke", None: None}


def events(units, population):
    start = datetime(2026, 9, 1, tzinfo=UTC)
    draw = uuid.UUID(int=7)
    samples, invitations, responses = [], [], []
    for (k, g), (big_n, n) in SIZES.items():
        stratum = f"{k}:{g}"
        samples.append(SampleDrawn(
            round_id=ROUND, kommunekode=k, draw_id=draw, seed=1, chunk_no=0, final=True, chunk_count=1, persons=[],
            strata=[StratumSummary(stratum=stratum, maalgruppe=g, population=big_n, sample=min(big_n, 2 * n))],
        ))
    for (k, g), (big_n, n) in SIZES.items():  # the invited who did not answer
        for i in range(min(big_n, 2 * n) - n):
            invitations.append(InvitationSent(round_id=ROUND, kommunekode=k, pseudonym=f"q-{k}-{g}-{i}", step="invitation",
                                              channel="digital_post", maalgruppe=g, stratum=f"{k}:{g}", sent_at=start))
    for i, u in enumerate(units):
        pseudonym = f"p-{i}"
        invitations.append(InvitationSent(round_id=ROUND, kommunekode=u["kommune"], pseudonym=pseudonym, step="invitation",
                                          channel="digital_post", maalgruppe=u["maalgruppe"], stratum=u["stratum"], sent_at=start))
        responses.append(ResponseSubmitted(
            round_id=ROUND, kommunekode=u["kommune"], pseudonym=pseudonym, questionnaire_id="kl_core", questionnaire_version=1,
            mode="web", maalgruppe=u["maalgruppe"], stratum=u["stratum"],
            bands=Bands(gender=u["gender"], age_band=u["age"], duration_band=u["duration"]), design_weight=u["N"] / u["n"],
            answers={"q13": VALUE[u["code"]]}, submitted_at=start + timedelta(days=1),
        ))
    by_kommune: dict[str, list[PopulationCell]] = {}
    for (k, g, gender, age, duration), count in sorted(population.items()):
        by_kommune.setdefault(k, []).append(
            PopulationCell(maalgruppe=g, bands=Bands(gender=gender, age_band=age, duration_band=duration), population=count))
    margins = [FrameMargins(round_id=ROUND, kommunekode=k, draw_id=draw, chunk_no=0, final=True, chunk_count=1,
                            population=sum(c.population for c in cells), cells=cells) for k, cells in by_kommune.items()]
    return samples, margins, invitations, responses


async def wait_until_released(client, token: str, database_url: str, answers: int, timeout: float = 90) -> None:
    """Until every answer is counted and the latest release is at the round's current version."""
    engine = create_async_engine(to_async_url(database_url))
    try:
        async with asyncio.timeout(timeout):
            while True:
                r = await client.get(f"/rounds/{ROUND}/response-rates", headers=bearer(token))
                rows = r.json()["rows"] if r.status_code == 200 else []
                async with engine.connect() as conn:
                    version = (await conn.execute(sa.text("SELECT version FROM analytics.round_state WHERE round_id = :r"), {"r": ROUND})).scalar()
                listed = (await client.get(f"/rounds/{ROUND}/releases", headers=bearer(token))).json()
                if rows and rows[0].get("answers") == answers and isinstance(listed, list) and listed and listed[-1]["version"] == version:
                    return
                await asyncio.sleep(0.2)
    finally:
        await engine.dispose()


async def test_published_calibrated_figures_equal_r_through_the_pipeline(service_env, dev_issuer, kafka_bootstrap, topic_prefix, tmp_path):
    units, population = make_round()
    reference = run_r(units, population, BOUNDS, tmp_path)
    samples, margins, invitations, responses = events(units, population)
    kl = dev_issuer.mint("kl", ["aggregates:read", "kommuner:all"])
    operator = dev_issuer.mint("kl-operator", ["rounds:admin", "kommuner:all"])
    # Suppression at 1 (only empty cells hidden): every stratum is published weighted stratum by
    # stratum, so every calibrated figure of the page is compared with R's (a cell with hidden
    # strata pooled publishes none).
    app = create_app(settings_from_env(AnalyticsSettings, service_env, suppression_threshold=1, **QUIET))
    async with running_app(app) as client:
        await publish_events(kafka_bootstrap, topic_prefix, [*samples, *margins, *invitations])
        await publish_events(kafka_bootstrap, topic_prefix, responses)
        await wait_until_released(client, kl, service_env["DATABASE_URL"], len(responses))

        # Defaults before the operator sets anything: adjust, the default margins and bounds.
        r = await client.get(f"/rounds/{ROUND}/calibration", headers=bearer(kl))
        assert r.status_code == 200, r.text
        assert r.json()["lonely_strata"] == "adjust" and r.json()["bounds"] == [0.2, 5.0]
        assert r.json()["margins"] == [["maalgruppe", "gender"], ["maalgruppe", "age_band"], ["duration_band"]]

        # Bad settings: a clear 422 naming the field; a reader may not set them; an unknown round is 404.
        bad = await client.put(f"/rounds/{ROUND}/calibration", json={"bounds": [1.5, 3.0]}, headers=bearer(operator))
        assert bad.status_code == 422 and "lower < 1 < upper" in bad.text
        bad = await client.put(f"/rounds/{ROUND}/calibration", json={"margins": [["maalgruppe", "koen"]]}, headers=bearer(operator))
        assert bad.status_code == 422 and "margins" in bad.text
        assert (await client.put(f"/rounds/{ROUND}/calibration", json={}, headers=bearer(kl))).status_code == 403
        assert (await client.put("/rounds/nope/calibration", json={}, headers=bearer(operator))).status_code == 404

        r = await client.put(f"/rounds/{ROUND}/calibration", json={"bounds": list(BOUNDS), "lonely_strata": "average"},
                             headers=bearer(operator))
        assert r.status_code == 200, r.text
        assert r.json()["lonely_strata"] == "average" and r.json()["bounds"] == list(BOUNDS)
        await wait_until_released(client, kl, service_env["DATABASE_URL"], len(responses))

        page = (await client.get(f"/rounds/{ROUND}/indicators", params={"question": "q13", "dimension": "maalgruppe"},
                                 headers=bearer(kl))).json()
        method = page["method"]
        assert method["lonely_strata"] == "average"
        assert method["calibration"]["calibrated"] == ["101", "147", "751"] and method["calibration"]["problems"] == []
        assert method["calibration"]["bounds"] == list(BOUNDS)
        assert math.isclose(method["calibration"]["g_max"], reference["g_max"], rel_tol=TOL)
        view = (await client.get(f"/rounds/{ROUND}/calibration", headers=bearer(kl))).json()
        assert view["method"] == method and view["release"] == page["release"]

        checked = Counter()
        for row in page["rows"]:
            if row["suppressed"] or row["weighting"] != "strata":
                # Hidden, or a cell with hidden strata pooled: a calibrated figure over its real
                # strata would say how they split.
                assert all(row[f"{ind}_calibrated{s}"] is None for ind in ("mean", "top2_share") for s in ("", "_se", "_ci_low", "_ci_high"))
                checked["withheld"] += not row["suppressed"]
                continue
            if row["kommunekode"] == "national":
                name = "national" if row["level"] == "total" else f"maalgruppe.{row['level']}"
            else:
                name = f"kommune.{row['kommunekode']}" if row["level"] == "total" else f"stratum.{row['kommunekode']}:{row['level']}"
            for r_var, ind in (("score", "mean"), ("top2", "top2_share")):
                for suffix, r_suffix in (("", "est"), ("_se", "se"), ("_ci_low", "lo"), ("_ci_high", "hi")):
                    ours, theirs = row[f"{ind}_calibrated{suffix}"], reference[f"cal.average.{r_var}.{name}.{r_suffix}"]
                    assert math.isclose(ours, theirs, rel_tol=TOL, abs_tol=TOL), (name, ind, suffix, ours, theirs)
            assert row["mean"] is not None  # both published, side by side
            checked["moved"] += row["mean"] != row["mean_calibrated"]
            checked[name.split(".")[0]] += 1
        # (The suppression decides which strata show; the national and municipal totals and the national
        # target groups are unions of strata, published with their hidden strata pooled.)
        assert checked["national"] == 1 and checked["kommune"] == 3 and checked["maalgruppe"] == 2 and checked["stratum"] == 6, checked
        assert checked["moved"] >= 6, checked  # the raking moved most cells' figures

        # Breakdown rows (gender, age, duration) publish no weighted figure, so no calibrated one either.
        rows = (await client.get(f"/rounds/{ROUND}/indicators", params={"question": "q13", "dimension": "gender"}, headers=bearer(kl))).json()["rows"]
        assert all(row["mean_calibrated"] is None for row in rows if row["level"] != "total")
