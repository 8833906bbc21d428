"""Every refusal in ingest's error table (services.ingest.errors) answers over HTTP with its
status and a detail that says what is wrong, and nothing is stored (no delivery, no uploaded
file left behind). The rounds' own refusals
(404, 409, 422 of the lifecycle) are in test_rounds_api.py; these are the rest."""

from __future__ import annotations

import uuid
from pathlib import Path

from ingest_helpers import CSV, REFERENCE_DATE, deliveries_of_round, upload
from services.ingest.config import IngestSettings
from services.ingest.main import create_app
from shared.testing.fixtures import bearer, running_app, settings_from_env
from shared.testing.round import define_round

GOOD = {"cpr": "010190-1234", "ydelse": "Dagpenge", "overgangsdato": "2022-01-01"}
BAD = {"cpr": "320190-1234", "ydelse": "Dagpenge", "overgangsdato": "2022-01-01"}
HEADER = "CPR-nummer;Ydelse;Overgangsdato;Seneste samtale;Forløb afsluttet;Telefon;Passiv;Navn\n"
HEADER_AND_ROW = HEADER + "010190-1235;Dagpenge;01-01-2022;15-06-2023;nej;12 34 56 78;nej;Søren Ærø\n"


async def test_each_refusal_answers_as_the_table_says(service_env, dev_issuer, database_url, tmp_path):
    settings = settings_from_env(IngestSettings, service_env).model_copy(
        update={"json_batch_max_rows": 2, "upload_dir": str(tmp_path / "uploads")}
    )
    operator_token = dev_issuer.mint("kl-operator", ["rounds:admin", "kommuner:all"])
    operator = bearer(operator_token)
    privacy = bearer(dev_issuer.mint("kl-privacy", ["privacy:admin", "kommuner:all"]))
    vendor_token = dev_issuer.mint("momentum-dev", ["extracts:write", "extracts:read"], ["101"])
    vendor = bearer(vendor_token)
    round_id = f"r-{uuid.uuid4().hex[:10]}"

    def refused(response, status: int, says: str):
        assert response.status_code == status, response.text
        assert says in response.text, response.text
        return response.json()["detail"]

    async with running_app(create_app(settings)) as client:
        await define_round(client, operator_token, round_id)
        refused(await client.post("/rounds", json={"round_id": round_id, "name": "x", "reference_date": REFERENCE_DATE},
                                  headers=operator), 409, f"round {round_id} is already defined")

        batch = f"/rounds/{round_id}/extracts/101"
        refused(await client.post(batch, json={"reference_date": REFERENCE_DATE, "rows": [GOOD] * 3}, headers=vendor),
                413, "at most 2 rows")
        rejected = refused(
            await client.post(batch, json={"reference_date": REFERENCE_DATE, "policy": "reject_all", "rows": [GOOD, BAD]},
                              headers=vendor),
            422, "policy reject_all",
        )
        assert [(e["row"], e["column"]) for e in rejected["errors"]] == [(2, "cpr")]

        refused(await client.get("/profiles/nobody", headers=vendor), 404, "unknown column profile 'nobody'")
        refused(await upload(client, vendor_token, HEADER_AND_ROW, round_id=round_id, profile="nobody"),
                422, "unknown column profile 'nobody'")
        refused(await upload(client, vendor_token, HEADER_AND_ROW, round_id=round_id, column_map="[1]"),
                422, "column_map must be a JSON object")
        refused(await upload(client, vendor_token, HEADER_AND_ROW, round_id="r-nowhere"),
                404, "round r-nowhere is not defined")
        refused(await upload(client, vendor_token, HEADER, round_id=round_id, content_type=CSV), 409, "has no valid citizens")

        refused(await client.get(f"/rounds/{round_id}/retention", headers=operator), 404, f"round {round_id} is not closed")
        closed = await client.post(f"/rounds/{round_id}/close", json={}, headers=operator)
        assert closed.status_code == 201, closed.text
        refused(await client.post(f"/rounds/{round_id}/close", json={}, headers=operator), 409, f"round {round_id} is already closed")
        refused(await client.post(batch, json={"reference_date": REFERENCE_DATE, "rows": [GOOD]}, headers=vendor),
                409, "takes no more deliveries")

        not_cpr = refused(await client.post("/privacy/requests", json={"cpr": "3201901234", "kind": "erasure"}, headers=privacy),
                          422, "not a CPR number")
        assert not_cpr[0]["loc"] == ["body", "cpr"] and "3201901234" not in str(not_cpr)
        unknown = uuid.uuid4()
        refused(await client.get(f"/privacy/requests/{unknown}", headers=privacy), 404, f"no privacy request {unknown}")

    assert await deliveries_of_round(database_url, round_id) == []
    assert not list(Path(settings.upload_path).glob("extract-*"))  # every refused upload's file is gone
