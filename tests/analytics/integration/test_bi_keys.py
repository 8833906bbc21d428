"""BI keys over HTTP (real PostgreSQL and broker): a BI client makes a key with its OAuth2 token,
its BI tool reads the published tables with the key as Basic credentials (JSON, CSV, OData), only
for the key's municipalities and only reads; the secret is kept as its hash; the key can be
listed, expires, is revoked by its maker or KL's operator, and stops working at once; making and
revoking are in the audit log."""

from __future__ import annotations

import asyncio
import base64
import hashlib
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from services.analytics.config import AnalyticsSettings
from services.analytics.main import create_app
from services.analytics.synthetic import synthetic_round
from shared.testing.fixtures import bearer, publish_events, running_app, settings_from_env

from analytics_helpers import wait_for_release

ROUND = "bik-1"


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


async def test_a_bi_tool_reads_with_a_key_its_maker_can_revoke(service_env, dev_issuer, kafka_bootstrap, topic_prefix):
    settings = settings_from_env(AnalyticsSettings, service_env, publication_release_quiet_seconds=0.3,
                                 publication_preliminary_scope="all")
    rnd = synthetic_round(ROUND, ["101", "751"], respondents=160, seed=5, questions=("q1", "q13"))
    aarhus = dev_issuer.mint("aarhus-bi", ["aggregates:read"], ["751"])
    kbh = dev_issuer.mint("koebenhavn-bi", ["aggregates:read"], ["101"])
    operator = dev_issuer.mint("kl-operator", ["rounds:admin", "aggregates:read", "kommuner:all"])
    auditor = dev_issuer.mint("kl-auditor", ["audit:read", "kommuner:all"])
    app = create_app(settings)
    async with running_app(app) as client:
        await publish_events(kafka_bootstrap, topic_prefix, [*rnd.samples, *rnd.invitations, *rnd.responses])
        await wait_for_release(client, ROUND, operator, len(rnd.responses))

        # The maker asks for a key to its own municipality (4 digits accepted, stored as 3).
        made = await client.post("/bi-keys", json={"label": "Power BI: månedsrapport", "kommunekoder": ["0751"]},
                                 headers=bearer(aarhus))
        assert made.status_code == 201, made.text
        key = made.json()
        assert key["key_id"].startswith("bbk_") and len(key["secret"]) >= 40
        assert key["kommunekoder"] == ["751"] and key["scopes"] == ["aggregates:read"] and key["owner"] == "aarhus-bi"
        assert key["revoked_at"] is None and key["last_used_at"] is None
        with_key = basic(key["key_id"], key["secret"])

        # The BI tool reads what its maker reads, in every format.
        by_token = (await client.get(f"/rounds/{ROUND}/indicators", params={"kommunekode": "751"}, headers=bearer(aarhus))).json()
        by_key = await client.get(f"/rounds/{ROUND}/indicators", params={"kommunekode": "751"}, headers=with_key)
        assert by_key.status_code == 200 and by_key.json()["rows"] == by_token["rows"] and by_token["rows"]
        csv = await client.get(f"/rounds/{ROUND}/indicators", params={"kommunekode": "751", "format": "csv"}, headers=with_key)
        assert csv.status_code == 200 and csv.text.startswith("round_id,")
        feed = await client.get("/odata/Indicators", params={"$filter": "kommunekode in ('751')", "$top": "5"}, headers=with_key)
        assert feed.status_code == 200 and {r["kommunekode"] for r in feed.json()["value"]} == {"751"}
        assert (await client.get("/odata/$metadata", headers=with_key)).status_code == 200
        everything = await client.get("/odata/Indicators", params={"$top": "5000"}, headers=with_key)
        assert {r["kommunekode"] for r in everything.json()["value"]} == {"national", "751"}
        # Nothing beyond the key's municipality, and nothing but reads.
        other = await client.get(f"/rounds/{ROUND}/indicators", params={"kommunekode": "101"}, headers=with_key)
        assert other.status_code == 403
        assert (await client.post(f"/rounds/{ROUND}/releases", json={"phase": "preliminary"}, headers=with_key)).status_code == 401
        assert (await client.post("/bi-keys", json={"label": "a key from a key"}, headers=with_key)).status_code == 401
        assert (await client.get("/bi-keys", headers=with_key)).status_code == 401

        # A wrong secret, an unknown key or no credentials: 401 naming both ways in; OData's error body.
        for headers in (basic(key["key_id"], key["secret"][:-1] + "x"), basic("bbk_0000000000000000", key["secret"]),
                        basic("nonsense", "x"), {}):
            r = await client.get(f"/rounds/{ROUND}/indicators", headers=headers)
            assert r.status_code == 401 and "Basic" in r.headers["www-authenticate"], (headers, r.text)
        r = await client.get("/odata/Indicators", headers=basic(key["key_id"], "wrong"))
        assert r.status_code == 401 and r.json()["error"]["code"] and "Basic" in r.headers["www-authenticate"]

        # No more than the maker reads.
        for body, fragment in (({"label": "x", "kommunekoder": ["101"]}, "101"), ({"label": "x", "all_kommuner": True}, "kommuner:all")):
            r = await client.post("/bi-keys", json=body, headers=bearer(aarhus))
            assert r.status_code == 403 and fragment in r.json()["detail"], r.text
        for body in ({"label": "x", "kommunekoder": ["75"]}, {"label": ""}, {"label": "x", "expires_at": "2020-01-01T00:00:00Z"}):
            r = await client.post("/bi-keys", json=body, headers=bearer(aarhus))
            assert r.status_code == 422, (body, r.text)
        national = await client.post("/bi-keys", json={"label": "KL: alle kommuner", "all_kommuner": True}, headers=bearer(operator))
        assert national.status_code == 201 and national.json()["scopes"] == ["aggregates:read", "kommuner:all"]
        r = await client.get(f"/rounds/{ROUND}/indicators", params={"kommunekode": "101"},
                             headers=basic(national.json()["key_id"], national.json()["secret"]))
        assert r.status_code == 200 and r.json()["rows"]

        # At rest: the secret's SHA-256, never the secret.
        async with app.state.runtime.engine.connect() as conn:
            row = (await conn.execute(sa.text("SELECT * FROM analytics.bi_key WHERE key_id = :k"), {"k": key["key_id"]})).mappings().one()
        assert row["secret_hash"] == hashlib.sha256(key["secret"].encode()).hexdigest()
        assert key["secret"] not in repr(dict(row))

        # The maker lists its keys (no secret), with the last use; another client sees none of them.
        listed = (await client.get("/bi-keys", headers=bearer(aarhus))).json()
        assert [k["key_id"] for k in listed] == [key["key_id"]] and "secret" not in listed[0]
        assert listed[0]["last_used_at"] is not None
        assert (await client.get("/bi-keys", headers=bearer(kbh))).json() == []
        assert (await client.delete(f"/bi-keys/{key['key_id']}", headers=bearer(kbh))).status_code == 404
        assert {k["key_id"] for k in (await client.get("/bi-keys", headers=bearer(operator))).json()} == {
            key["key_id"], national.json()["key_id"]}

        # Revoked: it stops at once; revoking again changes nothing.
        revoked = await client.delete(f"/bi-keys/{key['key_id']}", headers=bearer(aarhus))
        assert revoked.status_code == 200 and revoked.json()["revoked_by"] == "aarhus-bi" and revoked.json()["revoked_at"]
        assert (await client.get(f"/rounds/{ROUND}/indicators", headers=with_key)).status_code == 401
        again = await client.delete(f"/bi-keys/{key['key_id']}", headers=bearer(aarhus))
        assert again.json()["revoked_at"] == revoked.json()["revoked_at"]
        # KL's operator revokes a client's key (a leaked key is stopped without its maker).
        second = (await client.post("/bi-keys", json={"label": "Excel"}, headers=bearer(aarhus))).json()
        assert second["kommunekoder"] == ["751"]
        assert (await client.get("/rounds", headers=basic(second["key_id"], second["secret"]))).status_code == 200
        assert (await client.delete(f"/bi-keys/{second['key_id']}", headers=bearer(operator))).json()["revoked_by"] == "kl-operator"
        assert (await client.get("/rounds", headers=basic(second["key_id"], second["secret"]))).status_code == 401

        # A key with an expiry works until then, not after.
        soon = (datetime.now(UTC) + timedelta(seconds=2)).isoformat()
        brief = (await client.post("/bi-keys", json={"label": "kort", "expires_at": soon}, headers=bearer(aarhus))).json()
        assert (await client.get("/rounds", headers=basic(brief["key_id"], brief["secret"]))).status_code == 200
        await asyncio.sleep(2.5)
        assert (await client.get("/rounds", headers=basic(brief["key_id"], brief["secret"]))).status_code == 401

        # Making and revoking keys are in the audit log, by who did it.
        entries = (await client.get("/audit", params={"limit": 500}, headers=bearer(auditor))).json()["entries"]
        actions = {(e["actor"], e["action"], e["status"]) for e in entries}
        assert ("aarhus-bi", "POST /bi-keys", 201) in actions
        assert ("aarhus-bi", "DELETE /bi-keys/{key_id}", 200) in actions
        assert ("kl-operator", "DELETE /bi-keys/{key_id}", 200) in actions
        assert ("aarhus-bi", "POST /bi-keys", 403) in actions
