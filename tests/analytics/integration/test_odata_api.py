"""The OData feed and the typed JSON tables against a published round (real PostgreSQL and broker):
every OData answer is the JSON API's rows, filtered, sorted, counted and paged as the query says;
refusals are OData error bodies; what the service does not implement is 501."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET

from services.analytics.config import AnalyticsSettings
from services.analytics.domain.publication import INDICATOR_COLUMNS
from services.analytics.main import create_app
from services.analytics.schemas import IndicatorPage, ResponseRatePage
from services.analytics.synthetic import synthetic_round
from shared.testing.fixtures import bearer, publish_events, running_app, settings_from_env

from analytics_helpers import wait_for_release

ROUND = "od-1"
KEY = ("round_id", "question", "dimension", "kommunekode", "level")
EDM = "{http://docs.oasis-open.org/odata/ns/edm}"


def row_id(row: dict) -> str:
    return "~".join(str(row[c]) for c in KEY)


def sorted_like_odata(rows: list[dict], *keys: tuple[str, bool]) -> list[dict]:
    """Stable sort key by key, null lowest (first ascending, last descending)."""
    for column, descending in reversed(keys):
        present = sorted((r for r in rows if r[column] is not None), key=lambda r: r[column], reverse=descending)
        absent = [r for r in rows if r[column] is None]
        rows = present + absent if descending else absent + present
    return rows


async def test_odata_answers_are_the_json_rows_queried(service_env, dev_issuer, kafka_bootstrap, topic_prefix):
    settings = settings_from_env(
        AnalyticsSettings, service_env, publication_release_quiet_seconds=0.3, publication_preliminary_scope="all", max_page_size=40
    )
    rnd = synthetic_round(ROUND, ["101", "147", "751"], respondents=240, seed=3, questions=("q1", "q12", "q13"))
    kl = dev_issuer.mint("kl", ["aggregates:read", "kommuner:all"])
    aarhus = dev_issuer.mint("aarhus", ["aggregates:read"], ["751"])
    app = create_app(settings)
    async with running_app(app) as client:
        await publish_events(kafka_bootstrap, topic_prefix, [*rnd.samples, *rnd.invitations, *rnd.responses])
        await wait_for_release(client, ROUND, kl, len(rnd.responses))

        async def get(path: str, token: str = kl, **params):
            return await client.get(path, params=params, headers=bearer(token))

        async def every_page(path: str, **params) -> list[dict]:
            """All rows of a query, following @odata.nextLink (the page size is 40 here)."""
            body = (await get(path, **params)).json()
            rows = body["value"]
            while "@odata.nextLink" in body:
                body = (await client.get(body["@odata.nextLink"], headers=bearer(kl))).json()
                rows += body["value"]
            return rows

        # The JSON API's rows, typed: every page validates against its model (extra columns refused).
        json_rows: list[dict] = []
        offset = 0
        while True:
            page = (await get(f"/rounds/{ROUND}/indicators", offset=offset)).json()
            IndicatorPage.model_validate(page)
            json_rows += page["rows"]
            offset += page["limit"]
            if offset >= page["total"]:
                break
        assert len(json_rows) > 100
        rates = (await get(f"/rounds/{ROUND}/response-rates/detail")).json()
        ResponseRatePage.model_validate(rates)
        trends = await get("/trends")
        assert trends.status_code == 200 and trends.json()["columns"][0] == "round_id"
        method = await get("/method")
        assert method.status_code == 200 and method.headers["content-type"].startswith("text/markdown")
        assert "n_valid" in method.text or "valid (scale) answers" in method.text
        assert "/method" in (await client.get("/openapi.json")).json()["info"]["description"]

        # Beside each weighted estimate its population, design effect and effective sample size;
        # a suppressed cell carries none of them, a share's interval stays within 0-1.
        weighted = [r for r in json_rows if r["weighting"] in ("strata", "strata_pooled") and not r["few_answers"]]
        assert weighted and all(r["mean_population"] > 0 and r["mean_deff"] > 0 for r in weighted)
        assert all(math.isclose(r["mean_n_effective"], r["n_valid"] / r["mean_deff"]) for r in weighted)
        hidden = [r for r in json_rows if r["suppressed"]]
        assert hidden and all(r[c] is None for r in hidden for c in INDICATOR_COLUMNS if c.endswith(("_population", "_deff", "_n_effective")))
        for r in weighted:
            for share in ("top2_share", "dont_know_share", "share_1", "share_5"):
                assert 0.0 <= r[f"{share}_ci_low"] <= r[share] <= r[f"{share}_ci_high"] <= 1.0
        odata_rows = await every_page("/odata/Indicators")
        assert [{c: r[c] for c in INDICATOR_COLUMNS} for r in odata_rows] == json_rows
        assert [r["id"] for r in odata_rows] == [row_id(r) for r in json_rows]

        # $metadata: described and annotated with what the feed can do; its vocabularies served beside.
        root = ET.fromstring((await get("/odata/$metadata")).text)
        indicator = next(t for t in root.iter(f"{EDM}EntityType") if t.get("Name") == "Indicator")
        assert all(p.find(f"{EDM}Annotation").get("Term") == "Org.OData.Core.V1.Description" for p in indicator.iter(f"{EDM}Property"))
        vocabulary = await get("/odata/vocabularies/Org.OData.Capabilities.V1.xml")
        assert vocabulary.status_code == 200 and "SortRestrictions" in vocabulary.text
        missing = await get("/odata/vocabularies/Org.Nothing.xml")
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "NotFound"

        # The JSON API takes a code with 4 digits too (a page of at most 40 rows here).
        four = (await get(f"/rounds/{ROUND}/indicators", kommunekode="0751")).json()
        aarhus_rows = [r for r in json_rows if r["kommunekode"] == "751"]
        assert four["total"] == len(aarhus_rows) and four["rows"] == aarhus_rows[: four["limit"]]
        r = await get(f"/rounds/{ROUND}/indicators", aarhus, kommunekode="0751", limit=5)
        assert r.status_code == 200 and {x["kommunekode"] for x in r.json()["rows"]} == {"751"}

        # Sort, then keep the top rows.
        top = (await get("/odata/Indicators", **{"$orderby": "mean desc", "$top": "20"})).json()["value"]
        assert [r["id"] for r in top] == [row_id(r) for r in sorted_like_odata(json_rows, ("mean", True))[:20]]
        assert top[0]["mean"] == max(r["mean"] for r in json_rows if r["mean"] is not None)
        # Several keys, across pages.
        ordered = await every_page("/odata/Indicators", **{"$orderby": "kommunekode asc,n_valid desc,question"})
        expected = sorted_like_odata(json_rows, ("kommunekode", False), ("n_valid", True), ("question", False))
        assert [r["id"] for r in ordered] == [row_id(r) for r in expected]

        # $filter: comparison, logical and string operators, parentheses, in.
        cases = {
            "((dimension eq 'maalgruppe') and (level ne 'total'))": lambda r: r["dimension"] == "maalgruppe" and r["level"] != "total",
            "mean gt 3.5 or (n_valid le 10 and not suppressed)":
                lambda r: (r["mean"] is not None and r["mean"] > 3.5) or (r["n_valid"] is not None and r["n_valid"] <= 10 and not r["suppressed"]),
            "mean ge 3 and mean lt 4": lambda r: r["mean"] is not None and 3 <= r["mean"] < 4,
            "kommunekode in ('101', '751') and startswith(question, 'q1')":
                lambda r: r["kommunekode"] in ("101", "751") and r["question"].startswith("q1"),
            # A list of one, as OData writes it (no trailing comma), alone and inside parentheses.
            "kommunekode in ('147')": lambda r: r["kommunekode"] == "147",
            # A code with 4 digits, as registers write it, is the stored 3.
            "kommunekode in ('0147')": lambda r: r["kommunekode"] == "147",
            "kommunekode eq '0751' and mean gt 1": lambda r: r["kommunekode"] == "751" and r["mean"] is not None and r["mean"] > 1,
            "(question in ('q12')) and kommunekode in ('national', '751')":
                lambda r: r["question"] == "q12" and r["kommunekode"] in ("national", "751"),
            "contains(level, 'parat') or endswith(question, '3')": lambda r: "parat" in r["level"] or r["question"].endswith("3"),
            "mean eq null and not (suppressed eq true)": lambda r: r["mean"] is None and not r["suppressed"],
        }
        for text, wanted in cases.items():
            expected_ids = [row_id(r) for r in json_rows if wanted(r)]
            assert expected_ids, text
            assert [r["id"] for r in await every_page("/odata/Indicators", **{"$filter": text})] == expected_ids, text
            counted = await get("/odata/Indicators/$count", **{"$filter": text})
            assert counted.status_code == 200 and counted.text == str(len(expected_ids)), text
            page = (await get("/odata/Indicators", **{"$filter": text, "$count": "true", "$top": "1"})).json()
            assert page["@odata.count"] == len(expected_ids) and len(page["value"]) == 1
        assert (await get("/odata/Indicators/$count")).text == str(len(json_rows))

        # $select and $skip.
        page = (await get("/odata/Indicators", **{"$select": "id,mean", "$skip": "5", "$top": "3"})).json()
        assert page["@odata.context"].endswith("$metadata#Indicators(id,mean)")
        assert page["value"] == [{"id": row_id(r), "mean": r["mean"]} for r in json_rows[5:8]]

        # Key lookup: as a string, by name, or by every key column.
        first = json_rows[0]
        for key in (f"'{row_id(first)}'", f"id='{row_id(first)}'", ",".join(f"{c}='{first[c]}'" for c in KEY)):
            r = await get(f"/odata/Indicators({key})")
            assert r.status_code == 200, (key, r.text)
            body = r.json()
            assert body["@odata.context"].endswith("$metadata#Indicators/$entity")
            assert {c: body[c] for c in INDICATOR_COLUMNS} == first
        selected = (await get(f"/odata/Indicators('{row_id(first)}')", **{"$select": "mean"})).json()
        assert selected["mean"] == first["mean"] and "question" not in selected
        gone = await get("/odata/Indicators('no~such~row~at~all')")
        assert gone.status_code == 404 and set(gone.json()["error"]) == {"code", "message", "target"}
        assert (await get("/odata/Indicators(nonsense=1)")).status_code == 400

        # Refusals are OData error bodies; unsupported options are 501, never ignored.
        for option in ("$expand", "$search", "$apply", "$compute", "$whatever"):
            r = await get("/odata/Indicators", **{option: "x"})
            assert r.status_code == 501, option
            assert r.json()["error"]["code"] == "NotImplemented" and r.json()["error"]["target"] == option
        assert (await get("/odata/Indicators/$count", **{"$search": "x"})).status_code == 501
        bad = await get("/odata/Indicators", **{"$filter": "mean eq 'high'"})
        assert bad.status_code == 400 and bad.json()["error"]["target"] == "$filter" and "number" in bad.json()["error"]["message"]
        assert (await get("/odata/Nothing")).json()["error"]["code"] == "NotFound"
        anonymous = await client.get("/odata/Indicators")
        assert anonymous.status_code == 401 and "error" in anonymous.json()
        # A municipality reads itself and the nation; naming another is refused, as in the JSON API.
        r = await get("/odata/Indicators", aarhus, **{"$filter": "kommunekode eq '101' and mean gt 1"})
        assert r.status_code == 403 and r.json()["error"]["code"] == "Forbidden"
        r = await get("/odata/Indicators", aarhus, **{"$filter": "kommunekode in ('101', '751')", "$top": "1000"})
        assert {x["kommunekode"] for x in r.json()["value"]} == {"751"}
        other = next(x for x in json_rows if x["kommunekode"] == "101")
        assert (await get(f"/odata/Indicators('{row_id(other)}')", aarhus)).status_code == 403

        # The other sets take the same queries.
        rate_rows = await every_page("/odata/ResponseRates", **{"$filter": "dimension eq 'arm' and answers ge 0", "$orderby": "response_rate desc"})
        assert rate_rows and all(r["dimension"] == "arm" for r in rate_rows)
        rates_sorted = [r["response_rate"] for r in rate_rows]
        assert rates_sorted == sorted(rates_sorted, reverse=True)
        trend_rows = await every_page("/odata/Trends", **{"$filter": "indicator eq 'mean'"})
        assert trend_rows and {r["indicator"] for r in trend_rows} == {"mean"}
