"""Analytics against real PostgreSQL and a real broker: events in, published tables out.

One round is produced once per test (the broker and databases are the expensive part), and
every published table of its latest release is then checked: estimates against the domain's
unit-level design, the differencing attacker over every table and filter combination, access
per municipality, CSV and OData, and a replay into a fresh database giving identical tallies
and, built with the same baseline, the same tables.
"""

from __future__ import annotations

import asyncio
import csv
import io
import math
import xml.etree.ElementTree as ET

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from services.analytics.builder import ProcessBuilder, ThreadBuilder
from services.analytics.config import AnalyticsSettings
from services.analytics.domain import AGREEMENT_SCALE, PublishedTable, StratifiedDesign, cell_indicators, find_recoverable_cells
from services.analytics.domain.answers import answer_code, scale_label
from services.analytics.domain.indicators import INDICATORS
from services.analytics.domain.publication import DIMENSIONS, RATE_DIMENSIONS
from services.analytics.domain.suppression import TOTAL
from services.analytics.main import create_app
from services.analytics.models import PublicationRelease, ResponseFact
from services.analytics.service import decode_publication
from services.analytics.synthetic import synthetic_round
from shared.db import to_async_url
from shared.testing.fixtures import bearer, create_test_database, publish_events, running_app, settings_from_env

KOMMUNER = ["101", "147", "751"]
TOL = 1e-9
# The release loop cuts a release once the round has been quiet this long: the tests publish
# their events, then read the release that follows.
# Full preliminary tables: the test reads every cell of the release the loop cuts.
QUIET = {"publication_release_quiet_seconds": 0.3, "publication_preliminary_scope": "all"}


async def produce(bootstrap: str, prefix: str, payloads, *, duplicate_every: int = 0) -> None:
    # A re-publication has a new event id: only the fact key dedups it.
    copies = [p for i, p in enumerate(payloads) for _ in range(2 if duplicate_every and i % duplicate_every == 0 else 1)]
    await publish_events(bootstrap, prefix, copies)


async def wait_for_counts(client, token: str, round_id: str, invited: int, answers: int, timeout: float = 60) -> None:
    async with asyncio.timeout(timeout):
        while True:
            r = await client.get(f"/rounds/{round_id}/response-rates", headers=bearer(token))
            rows = r.json()["rows"] if r.status_code == 200 else []
            national = rows[0] if rows else {}
            if national.get("invited") == invited and national.get("answers") == answers:
                return
            await asyncio.sleep(0.2)


async def wait_for_release_of_everything(client, token: str, database_url: str, round_id: str, timeout: float = 60) -> None:
    """Until the round's latest release covers every change it had (e.g. a frame that arrived
    after the last answer)."""
    engine = create_async_engine(to_async_url(database_url))
    try:
        async with asyncio.timeout(timeout):
            while True:
                async with engine.connect() as conn:
                    version = (await conn.execute(sa.text("SELECT version FROM analytics.round_state WHERE round_id = :r"), {"r": round_id})).scalar()
                listed = (await client.get(f"/rounds/{round_id}/releases", headers=bearer(token))).json()
                if listed and listed[-1]["version"] == version:
                    return
                await asyncio.sleep(0.2)
    finally:
        await engine.dispose()


def key_of(row: dict) -> tuple:
    return (TOTAL if row["kommunekode"] == "national" else row["kommunekode"], TOTAL if row["level"] == "total" else row["level"])


async def all_published(client, token: str, round_id: str, questions: list[str]) -> tuple[dict, dict]:
    """Every table and filter combination a KL reader can ask for, merged by cell identity."""
    indicator_cells: dict[tuple, dict] = {}
    rate_cells: dict[tuple, dict] = {}

    def merge(store: dict, identity: tuple, row: dict) -> None:
        assert store.setdefault(identity, row) == row, f"two reads disagree on {identity}"

    filters = [{}] + [{"kommunekode": k} for k in ["national", *KOMMUNER]]
    for q in questions:
        for dim in DIMENSIONS:
            for extra in filters:
                r = await client.get(f"/rounds/{round_id}/indicators", params={"question": q, "dimension": dim, **extra}, headers=bearer(token))
                assert r.status_code == 200, r.text
                for row in r.json()["rows"]:
                    merge(indicator_cells, (q, dim, row["kommunekode"], row["level"]), row)
    for dim in RATE_DIMENSIONS:
        for extra in filters:
            r = await client.get(f"/rounds/{round_id}/response-rates/detail", params={"dimension": dim, **extra}, headers=bearer(token))
            for row in r.json()["rows"]:
                merge(rate_cells, (dim, row["kommunekode"], row["level"]), row)
    return indicator_cells, rate_cells


def attacker_tables(indicator_cells: dict, rate_cells: dict, summary_rows: list[dict]) -> list[PublishedTable]:
    tables = []
    for q in sorted({i[0] for i in indicator_cells}):
        for dim in DIMENSIONS:
            rows = [row for (qq, dd, _, _), row in indicator_cells.items() if qq == q and dd == dim]
            for column in ("n_valid", "n_answers", "n_dont_know"):
                tables.append(PublishedTable(("kommunekode", dim), {key_of(r): r[column] for r in rows}, f"{column}:{q}"))
    for dim in RATE_DIMENSIONS:
        rows = [row for (dd, _, _), row in rate_cells.items() if dd == dim]
        tables.append(PublishedTable(("kommunekode", dim), {key_of(r): r["answers"] for r in rows}, "respondents"))
    tables.append(PublishedTable(("kommunekode",), {(TOTAL if r["kommunekode"] == "national" else r["kommunekode"],): r["answers"] for r in summary_rows}, "respondents"))
    return tables


async def stored_releases(database_url: str, round_id: str) -> list:
    engine = create_async_engine(to_async_url(database_url))
    try:
        async with engine.connect() as conn:
            t = PublicationRelease.__table__
            return (await conn.execute(sa.select(t).where(t.c.round_id == round_id).order_by(t.c.release))).all()
    finally:
        await engine.dispose()


async def table_snapshot(database_url: str) -> dict[str, list]:
    engine = create_async_engine(to_async_url(database_url))
    out = {}
    try:
        async with engine.connect() as conn:
            for table, order in (
                ("answer_tally", "round_id, stratum, gender, age_band, duration_band, question, code"),
                ("rate_tally", "round_id, stratum, arm, mode, language"),
                ("stratum_frame", "round_id, stratum"),
                ("invited", "round_id, pseudonym"),
                ("response_fact", "round_id, pseudonym"),
            ):
                # A fact's version says which batch counted it: consumer batching, not content.
                columns = ", ".join(c.name for c in ResponseFact.__table__.c if c.name != "version") if table == "response_fact" else "*"
                out[table] = [tuple(r) for r in (await conn.execute(sa.text(f"SELECT {columns} FROM analytics.{table} ORDER BY {order}"))).all()]
    finally:
        await engine.dispose()
    return out


def fresh_consumer_group(monkeypatch, group: str) -> None:
    """A rebuild is a new analytics database consuming the topics from the start under a new
    consumer group (offsets of the old group stay with the old database)."""
    import shared.runtime

    original = shared.runtime.IdempotentConsumer
    monkeypatch.setattr(shared.runtime, "IdempotentConsumer", lambda **kw: original(**kw, group_id=group))


async def test_round_published_safely_and_rebuilt_by_replay(service_env, dev_issuer, kafka_bootstrap, topic_prefix, postgres_admin_url, monkeypatch):
    settings = settings_from_env(AnalyticsSettings, service_env, **QUIET)
    # Answered on the web, on paper and by phone, in Danish, English and Arabic: the rate tables by
    # mode and language go through the same attacker as every other table.
    rnd = synthetic_round("2026-1", KOMMUNER, respondents=260, seed=11, questions=("q1", "q13"),
                          modes=("web", "web", "web", "paper", "phone"), languages=("da", "da", "da", "en", "ar"))
    kl = dev_issuer.mint("kl", ["aggregates:read", "kommuner:all"])
    aarhus = dev_issuer.mint("aarhus", ["aggregates:read"], ["751"])
    no_scope = dev_issuer.mint("x", ["extracts:write"], ["751"])
    invited, answers = len(rnd.invitations), len(rnd.responses)

    app = create_app(settings)
    async with running_app(app) as client:
        await produce(kafka_bootstrap, topic_prefix, rnd.samples)
        await produce(kafka_bootstrap, topic_prefix, rnd.invitations, duplicate_every=7)
        await produce(kafka_bootstrap, topic_prefix, rnd.responses, duplicate_every=5)
        await wait_for_counts(client, kl, "2026-1", invited, answers)
        await wait_for_release_of_everything(client, kl, service_env["DATABASE_URL"], "2026-1")

        # Access: scope required; a municipality sees itself and the nation only.
        assert (await client.get("/rounds/2026-1/indicators", headers=bearer(no_scope))).status_code == 403
        r = await client.get("/rounds/2026-1/indicators", headers=bearer(aarhus))
        assert {row["kommunekode"] for row in r.json()["rows"]} == {"national", "751"}
        assert (await client.get("/rounds/2026-1/indicators", params={"kommunekode": "101"}, headers=bearer(aarhus))).status_code == 403
        assert {row["kommunekode"] for row in (await client.get("/rounds/2026-1/response-rates", headers=bearer(aarhus))).json()["rows"]} == {"national", "751"}
        assert (await client.get("/odata/Indicators", params={"$filter": "kommunekode eq '101'"}, headers=bearer(aarhus))).status_code == 403
        odata_rows = (await client.get("/odata/Indicators", headers=bearer(aarhus))).json()["value"]
        assert odata_rows and {row["kommunekode"] for row in odata_rows} == {"national", "751"}

        summary = (await client.get("/rounds/2026-1/response-rates", headers=bearer(kl))).json()["rows"]
        assert summary[0]["kommunekode"] == "national" and summary[0]["answers"] == answers

        indicator_cells, rate_cells = await all_published(client, kl, "2026-1", ["q1", "q13"])
        hidden = [row for row in indicator_cells.values() if row["suppressed"]]
        assert hidden, "the synthetic round has small cells"
        for row in hidden:  # suppressed is null, never 0
            assert all(row[f"{ind}{s}"] is None for ind in INDICATORS for s in ("", "_se", "_unweighted"))
            assert row["n_answers"] is None and row["n_valid"] is None
        # Estimates rest on at least 5 valid answers (a cell with fewer says few_answers and has none).
        assert all(row["n_valid"] >= 5 or (row.get("few_answers") and row["mean"] is None)
                   for row in indicator_cells.values() if not row["suppressed"])
        assert find_recoverable_cells(attacker_tables(indicator_cells, rate_cells, summary)) == {}
        # By mode and by language: the national cells as the answers came, the shares adding up to the rate.
        for dim in ("mode", "language"):
            national = {lvl: row for (d, k, lvl), row in rate_cells.items() if d == dim and k == "national"}
            came = {lvl: sum(getattr(u, dim) == lvl for u in rnd.responses) for lvl in national if lvl != "total"}
            assert set(came) == {getattr(u, dim) for u in rnd.responses} and len(came) == 3
            for lvl, n in came.items():
                assert national[lvl]["invited"] == invited
                assert national[lvl]["suppressed"] or national[lvl]["answers"] == n
            assert national["total"]["answers"] == answers
        # The same rows over OData.
        odata_modes = (await client.get("/odata/ResponseRates", params={"$filter": "dimension eq 'mode' and kommunekode eq 'national'"},
                                        headers=bearer(kl))).json()["value"]
        assert {(r["level"], r["answers"]) for r in odata_modes} == {(lvl, row["answers"]) for (d, k, lvl), row in rate_cells.items()
                                                                     if d == "mode" and k == "national"}

        # The served estimates equal the domain's unit-level design (itself checked against R).
        units = rnd.responses
        design = StratifiedDesign([u.stratum for u in units], population_sizes=rnd.population)
        published = [row for row in indicator_cells.values() if not row["suppressed"]]
        # Weighted by stratum (the weighting column; a pooled or unweighted row's weighted
        # figures are another estimator, checked in the domain's tests).
        for row in [r for r in published if r.get("weighting", "strata") == "strata" and r["mean"] is not None]:
            labels = [None if (c := answer_code(u.answers.get(row["question"]))) is None else scale_label(c) for u in units]
            k, dim, lvl = row["kommunekode"], row["dimension"], row["level"]
            domain = [
                (k == "national" or u.kommunekode == k)
                and (lvl == "total" or (u.maalgruppe if dim == "maalgruppe" else getattr(u.bands, dim)) == lvl)
                for u in units
            ]
            ref = cell_indicators(design, labels, domain)
            assert row["n_answers"] == ref.n_answers and row["n_valid"] == ref.n_valid
            checks = [("mean", ref.weighted.mean_score, ref.unweighted.mean_score),
                      ("top2_share", ref.weighted.top_box_share, ref.unweighted.top_box_share),
                      ("share_5", ref.weighted.distribution[AGREEMENT_SCALE.labels[4]], ref.unweighted.distribution[AGREEMENT_SCALE.labels[4]])]
            for ind, w, uw in checks:
                for ours, theirs in ((row[ind], w.value), (row[f"{ind}_se"], w.se), (row[f"{ind}_ci_low"], w.ci_low),
                                     (row[f"{ind}_ci_high"], w.ci_high), (row[f"{ind}_unweighted"], uw.value)):
                    assert math.isclose(ours, theirs, rel_tol=TOL, abs_tol=TOL), (row, ind)
        assert len(published) > 20

        # Every page says which release it is.
        page = (await client.get("/rounds/2026-1/indicators", params={"limit": 1}, headers=bearer(kl))).json()
        listed = (await client.get("/rounds/2026-1/releases", headers=bearer(kl))).json()
        assert page["release"] == listed[-1]["release"] and page["phase"] == "preliminary" == listed[-1]["phase"]
        assert page["built_at"] == listed[-1]["built_at"] and [x["release"] for x in listed] == list(range(1, len(listed) + 1))
        assert (await client.get("/rounds/2026-1/response-rates", headers=bearer(kl))).json()["release"] == page["release"]

        # CSV: same rows, stable header, suppressed cells empty, the release on every row and in the headers.
        r = await client.get("/rounds/2026-1/indicators", params={"dimension": "maalgruppe", "kommunekode": "751", "format": "csv"}, headers=bearer(kl))
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
        assert r.headers["X-Release"] == str(page["release"]) and r.headers["X-Release-Phase"] == "preliminary"
        reader = list(csv.DictReader(io.StringIO(r.text)))
        assert reader and reader[0].keys() >= {"question", "kommunekode", "mean", "mean_se", "suppressed", "caution", "release", "phase", "built_at"}
        assert all(row["mean"] == "" for row in reader if row["suppressed"] == "true")
        assert {(row["release"], row["phase"], row["built_at"]) for row in reader} == {(str(page["release"]), "preliminary", page["built_at"])}
        page = (await client.get("/rounds/2026-1/indicators", params={"limit": 3, "offset": 2}, headers=bearer(kl))).json()
        assert len(page["rows"]) == 3 and page["total"] > 3

        # OData: service document, CSDL, a query with $filter/$select/$top/$count, paging link.
        doc = (await client.get("/odata/", headers=bearer(kl))).json()
        assert {s["name"] for s in doc["value"]} >= {"Indicators", "ResponseRates", "Trends"}
        meta = await client.get("/odata/$metadata", headers=bearer(kl))
        root = ET.fromstring(meta.text)
        ns = {"edmx": "http://docs.oasis-open.org/odata/ns/edmx", "edm": "http://docs.oasis-open.org/odata/ns/edm"}
        assert root.tag == "{http://docs.oasis-open.org/odata/ns/edmx}Edmx" and root.get("Version") == "4.0"
        assert {e.get("Name") for e in root.iterfind(".//edm:EntitySet", ns)} >= {"Indicators", "ResponseRates"}
        indicator_type = next(e for e in root.iterfind(".//edm:EntityType", ns) if e.get("Name") == "Indicator")
        properties = {p.get("Name"): p.get("Type") for p in indicator_type.iterfind("edm:Property", ns)}
        assert properties["release"] == "Edm.Int32" and properties["built_at"] == "Edm.DateTimeOffset" and properties["phase"] == "Edm.String"
        r = await client.get(
            "/odata/Indicators",
            params={"$filter": "question eq 'q13' and dimension eq 'maalgruppe' and kommunekode eq 'national'", "$select": "kommunekode,level,mean,suppressed", "$top": "2", "$count": "true"},
            headers=bearer(kl),
        )
        body = r.json()
        assert r.headers["content-type"].startswith("application/json;odata.metadata=minimal")
        assert body["@odata.context"].endswith("$metadata#Indicators(kommunekode,level,mean,suppressed)")
        assert body["@odata.count"] == 5 and len(body["value"]) == 2 and "@odata.nextLink" not in body  # $top is the client's limit
        assert set(body["value"][0]) == {"kommunekode", "level", "mean", "suppressed"} and body["value"][0]["level"] == "total"
        above = (await client.get("/odata/Indicators", params={"$filter": "mean gt 3"}, headers=bearer(kl))).json()["value"]
        assert above and all(x["mean"] > 3 for x in above)
        rates = (await client.get("/odata/ResponseRates", params={"$top": "3"}, headers=bearer(kl))).json()["value"]
        assert rates and all((x["release"], x["phase"], x["built_at"]) == (page["release"], "preliminary", page["built_at"]) for x in rates)

        served = (await client.get("/rounds/2026-1/indicators", headers=bearer(kl))).json()["rows"]

        # The service builds in a worker process; the in-thread builder on the service's own
        # pool gives the same publication (where a build runs never changes its rows).
        in_process = ProcessBuilder(service_env["DATABASE_URL"])
        try:
            other = await in_process.build("2026-1", settings.suppression_threshold, settings.caution_below)
        finally:
            in_process.close()
        here = await ThreadBuilder(app.state.runtime.uow).build("2026-1", settings.suppression_threshold, settings.caution_below)
        assert other.info == here.info and other.publication == here.publication
        assert len(here.publication.indicator_rows) == len(served)
    before = await table_snapshot(service_env["DATABASE_URL"])
    assert sum(r[6] for r in before["rate_tally"]) == answers  # the answered column: duplicates were not counted
    releases = await stored_releases(service_env["DATABASE_URL"], "2026-1")
    latest = decode_publication(releases[-1].publication)
    assert latest.indicator_rows == served

    # Replay: a fresh database, the same consumer group rewound to the start of the topics. Its
    # releases fall at other moments, so its tables are compared built from the same baseline
    # (the one the original's latest release was built with): a release is a pure function of
    # the tallies and its baseline.
    replay_env = {**service_env, "DATABASE_URL": await create_test_database(postgres_admin_url)}
    fresh_consumer_group(monkeypatch, f"{topic_prefix}analytics-rebuild")
    app = create_app(settings_from_env(AnalyticsSettings, replay_env, **QUIET))
    async with running_app(app) as client:
        await wait_for_counts(client, kl, "2026-1", invited, answers)
        await wait_for_release_of_everything(client, kl, replay_env["DATABASE_URL"], "2026-1")
        baseline = releases[-2].baseline if len(releases) > 1 else None
        rebuilt = await ThreadBuilder(app.state.runtime.uow).build("2026-1", settings.suppression_threshold, settings.caution_below, baseline)
    assert await table_snapshot(replay_env["DATABASE_URL"]) == before
    assert rebuilt.publication == latest
