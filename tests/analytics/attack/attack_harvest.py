"""Everything analytics publishes about a round to one reader, over HTTP only: REST JSON, CSV,
OData (following nextLink), the response-rate summary and detail, filtered reads. Rows of the
same cell from different formats are merged (a figure any format shows is known); two formats
disagreeing on a figure is recorded (it would itself be a leak, e.g. of freshness)."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field

from shared.testing.fixtures import bearer

IND_KEY = ("question", "dimension", "kommunekode", "level")
RATE_KEY = ("dimension", "kommunekode", "level")


@dataclass
class Published:
    """One reader's view of one publication of a round."""

    indicators: dict[tuple, dict] = field(default_factory=dict)  # (q, dim, k, level) -> row
    rates: dict[tuple, dict] = field(default_factory=dict)  # (dim, k, level) -> row; dim "summary" for /response-rates
    conflicts: list[tuple] = field(default_factory=list)
    releases: set = field(default_factory=set)  # (release, phase) seen on the responses
    meta: dict = field(default_factory=dict)

    def merge(self, store: dict, key: tuple, row: dict, source: str) -> None:
        have = store.setdefault(key, {})
        for column, value in row.items():
            if column in ("id", "round_id") or value is None or value == "":
                have.setdefault(column, None)
                continue
            old = have.get(column)
            if old is None:
                have[column] = value
            elif old != value and str(old) != str(value) and not (isinstance(old, float) and isinstance(value, (int, float)) and abs(old - value) <= 1e-12 * max(1.0, abs(old))):
                self.conflicts.append((source, key, column, old, value))


TEXT_COLUMNS = {"question", "dimension", "kommunekode", "level", "suppression", "weighting", "phase", "built_at", "scope", "questionnaire_id", "round_id"}


def _scalar(text: str, column: str = ""):
    if text == "":
        return None
    if column in TEXT_COLUMNS:
        return text
    if text in ("true", "false"):
        return text == "true"
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


def _note_release(pub: Published, body: dict) -> None:
    if isinstance(body, dict) and ("release" in body or "phase" in body):
        pub.releases.add((str(body.get("release")), body.get("phase")))


async def _paged_json(client, url: str, params: dict, headers: dict, pub: Published) -> list[dict]:
    rows, offset = [], 0
    while True:
        r = await client.get(url, params={**params, "offset": offset, "limit": 5000}, headers=headers)
        assert r.status_code == 200, (url, params, r.status_code, r.text[:300])
        body = r.json()
        _note_release(pub, body)
        rows.extend(body["rows"])
        offset += len(body["rows"])
        if not body["rows"] or offset >= body["total"]:
            return rows


async def _paged_csv(client, url: str, params: dict, headers: dict) -> list[dict]:
    rows, offset = [], 0
    while True:
        r = await client.get(url, params={**params, "format": "csv", "offset": offset, "limit": 5000}, headers=headers)
        assert r.status_code == 200, (url, r.status_code, r.text[:300])
        page = [{k: _scalar(v, k) for k, v in row.items()} for row in csv.DictReader(io.StringIO(r.text))]
        rows.extend(page)
        offset += len(page)
        if not page or offset >= int(r.headers.get("X-Total-Count", offset)):
            return rows


async def _odata(client, entity_set: str, round_id: str, headers: dict, pub: Published) -> list[dict]:
    rows = []
    url, params = f"/odata/{entity_set}", {"$filter": f"round_id eq '{round_id}'"}
    while url:
        r = await client.get(url, params=params, headers=headers)
        assert r.status_code == 200, (url, r.status_code, r.text[:300])
        body = r.json()
        _note_release(pub, body)
        rows.extend(body["value"])
        nxt = body.get("@odata.nextLink")
        url, params = (nxt.split("testserver", 1)[-1], None) if nxt else (None, None)
    return rows


async def harvest(client, token: str, round_id: str, kommuner: list[str]) -> Published:
    """Every table, format and filter one reader can get for the round's current publication."""
    h = bearer(token)
    pub = Published()
    base = f"/rounds/{round_id}"
    for row in await _paged_json(client, f"{base}/indicators", {}, h, pub):
        pub.merge(pub.indicators, tuple(row[c] for c in IND_KEY), row, "json")
    for row in await _paged_csv(client, f"{base}/indicators", {}, h):
        pub.merge(pub.indicators, tuple(str(row[c]) for c in IND_KEY), row, "csv")
    for row in await _odata(client, "Indicators", round_id, h, pub):
        pub.merge(pub.indicators, tuple(row[c] for c in IND_KEY), row, "odata")
    # Filtered reads (a filter must never show more than the full table).
    for k in ["national", *kommuner]:
        r = await client.get(f"{base}/indicators", params={"kommunekode": k, "limit": 5000}, headers=h)
        if r.status_code == 200:
            for row in r.json()["rows"]:
                pub.merge(pub.indicators, tuple(row[c] for c in IND_KEY), row, f"json:{k}")
    for row in await _paged_json(client, f"{base}/response-rates/detail", {}, h, pub):
        pub.merge(pub.rates, tuple(row[c] for c in RATE_KEY), row, "json")
    for row in await _paged_csv(client, f"{base}/response-rates/detail", {}, h):
        pub.merge(pub.rates, tuple(str(row[c]) for c in RATE_KEY), row, "csv")
    for row in await _odata(client, "ResponseRates", round_id, h, pub):
        pub.merge(pub.rates, tuple(row[c] for c in RATE_KEY), row, "odata")
    r = await client.get(f"{base}/response-rates", headers=h)
    assert r.status_code == 200, r.text
    body = r.json()
    _note_release(pub, body)
    pub.meta = {k: v for k, v in body.items() if k != "rows"}
    for row in body["rows"]:
        pub.merge(pub.rates, ("summary", row["kommunekode"], "total"), row, "summary")
    return pub
