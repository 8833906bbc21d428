"""Fuzzing with ids that exist (issue 26).

Generated ids never exist, so a plain schemathesis run stops at 404 and never reaches the code
behind it. Here one fixture round runs through the five services (in-process, one database, one
broker): KL's operator defines it, municipality 101 delivers a JSON extract and an extract file
(a job), sampling draws, responses learns a link, a privacy request is filed. Every path parameter
of every route of every service then gets a real id of that round (round, delivery, job, draw,
privacy request, kommunekode, question, profile, link token), while schemathesis generates the
query and body values (positive mode). The token holds every scope. Reads go first, the round's
own transitions (end of fieldwork, close) last, so every route meets the round in a live phase.
Any 5xx or an exception escaping the app fails, listed per route.

Budget: ``FUZZ_REAL_IDS_EXAMPLES`` (default 8) generated cases per operation, derandomised.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from pathlib import Path
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from shared.testing.tools import load_tool
from shared.events import Bands, LinkIssued
from shared.testing.fixtures import bearer, publish_events
from shared.testing.round import define_round, synthetic_rows

rules = load_tool("authz_rules")
ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = int(os.environ.get("FUZZ_REAL_IDS_EXAMPLES", "8"))
EVERY_SCOPE = [*rules.KNOWN_SCOPES, "audit:read", "privacy:admin", "keys:admin"]
ROUND, KOMMUNE = "fz-real-1", "101"
TOKEN = "fuzz-real-link-token-" + "Q" * 24
# Transitions that end the round's live phases: fuzzed after every other route.
LAST = ("/end-fieldwork", "/close")


async def _wait(check, timeout: float, what: str):
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        if found := await check():
            return found
        await asyncio.sleep(0.3)
    raise TimeoutError(f"timed out waiting for {what}")


async def real_round(live_services, dev_issuer, kafka_bootstrap) -> dict[str, str]:
    """Runs the fixture round; the real id for every path parameter name."""
    headers = bearer(dev_issuer.mint("kl-fuzz", EVERY_SCOPE))
    clients = {service: await live_services.client(service) for service in rules.SERVICES}
    ingest, sampling = clients["ingest"], clients["sampling"]
    now = datetime.now(UTC)
    await define_round(
        ingest, dev_issuer.mint("kl-fuzz", EVERY_SCOPE), ROUND,
        kommuner=[KOMMUNE], invitation_at=now + timedelta(days=1), fieldwork_ends_at=now + timedelta(days=8),
    )
    delivered = await ingest.post(
        f"/rounds/{ROUND}/extracts/{KOMMUNE}", json={"reference_date": "2023-08-01", "rows": synthetic_rows(12, seed=7)}, headers=headers
    )
    assert delivered.status_code == 201, delivered.text
    delivery_id = delivered.json()["delivery_id"]
    extract = (ROOT / "tests/ingest/corpus/good_cp1252_semicolon.csv").read_bytes()
    uploaded = await ingest.post(
        f"/rounds/{ROUND}/extracts/{KOMMUNE}/files", params={"dry_run": "true", "reference_date": "2023-08-01", "profile": "momentum"},
        content=extract, headers={**headers, "content-type": "text/csv"},
    )
    assert uploaded.status_code in (201, 202), uploaded.text
    job_id = uploaded.json()["job_id"]
    privacy = await ingest.post("/privacy/requests", json={"cpr": "0101901235", "kind": "objection"}, headers=headers)
    assert privacy.status_code in (200, 201, 202), privacy.text
    request_id = privacy.json()["request_id"]
    profiles = (await ingest.get("/profiles", headers=headers)).json()
    reference = _first_value(profiles, ("reference", "name", "id")) or "momentum"

    async def frame_ready():
        response = await sampling.get(f"/rounds/{ROUND}/frame", headers=headers)
        return response.status_code == 200 and sum(s["population"] for s in response.json()["strata"]) >= 12

    await _wait(frame_ready, 60, "the sampling frame")
    drawn = await sampling.post(f"/rounds/{ROUND}/draws", json={"seed": 42, "sample_per_stratum": 1000}, headers=headers)
    assert drawn.status_code == 201, drawn.text
    draw_id = drawn.json()["draw_id"]

    token_hash = hashlib.sha256(TOKEN.encode()).hexdigest()
    await publish_events(kafka_bootstrap, live_services.env["KAFKA_TOPIC_PREFIX"], [LinkIssued(
        round_id=ROUND, kommunekode=KOMMUNE, pseudonym="ps-fuzz-real", token_hash=token_hash, maalgruppe="dagpenge",
        stratum=f"{KOMMUNE}|dagpenge", bands=Bands(gender="K", age_band="30-39", duration_band="12-24m"),
        design_weight=2.0, expires_at=now + timedelta(days=30),
    )])
    engine = live_services.apps["responses"].state.runtime.engine

    async def link_known():
        async with engine.connect() as conn:
            return (await conn.execute(sa.text("SELECT count(*) FROM responses.respondent WHERE token_hash = :h"), {"h": token_hash})).scalar()

    await _wait(link_known, 60, "responses to learn the link")
    from services.responses.domain.questionnaire import load_questionnaire

    question = next(iter(load_questionnaire().questions)).id
    return {
        "round_id": ROUND, "kommunekode": KOMMUNE, "kommune": KOMMUNE, "delivery_id": str(delivery_id), "job_id": str(job_id),
        "draw_id": str(draw_id), "request_id": str(request_id), "reference": reference, "token": TOKEN, "question": question,
        "version": "1", "step": "invitation", "entity_set": "Indicators", "ext": "png", "chart_id": "q",
    }


def _first_value(document: Any, keys: tuple[str, ...]) -> str | None:
    items = document if isinstance(document, list) else next((v for v in document.values() if isinstance(v, list)), [])
    for item in items:
        for key in keys:
            if isinstance(item, dict) and item.get(key):
                return str(item[key])
    return None


def _cases(spec: dict) -> list[tuple[str, str, Any]]:
    """Runs in a worker thread: schemathesis (hypothesis) draws positive cases per operation."""
    import schemathesis
    from hypothesis import HealthCheck, Phase, given, settings
    from schemathesis import GenerationMode

    schema = schemathesis.openapi.from_dict(spec)
    drawn: list[tuple[str, str, Any]] = []
    for result in schema.get_all_operations():
        operation = result.ok()

        @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
                  phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy(generation_mode=GenerationMode.POSITIVE))
        def collect(case):
            drawn.append((operation.method.upper(), operation.path, case))

        collect()
    return drawn


def _order(item: tuple[str, str, Any]) -> tuple[int, str]:
    method, path, _ = item
    return (2 if path.endswith(LAST) else 0 if method == "GET" else 1, path)


@pytest.mark.fuzz
@pytest.mark.timeout(600)
@pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisDeprecationWarning")
async def test_every_route_fuzzed_with_real_ids_finds_no_server_error(live_services, dev_issuer, kafka_bootstrap):
    ids = await real_round(live_services, dev_issuer, kafka_bootstrap)
    headers = bearer(dev_issuer.mint("kl-fuzz", EVERY_SCOPE))
    failures: list[str] = []
    counts: dict[str, int] = {}
    reached: dict[str, int] = {}  # answered 2xx: the code behind the id was reached
    for service in rules.SERVICES:
        client = await live_services.client(service)
        spec = await live_services.openapi(service)
        cases = sorted(await asyncio.to_thread(_cases, spec), key=_order)
        for method, path, case in cases:
            for name in list(case.path_parameters or {}):
                if name in ids:
                    case.path_parameters[name] = ids[name]
            kwargs = case.as_transport_kwargs(base_url="http://testserver", headers=headers)
            kwargs.pop("method", None)
            url = kwargs.pop("url")
            kwargs.pop("timeout", None)
            kwargs.pop("allow_redirects", None)
            kwargs.pop("follow_redirects", None)
            if cookies := kwargs.pop("cookies", None):  # httpx wants cookies on the client, not per request
                kwargs["headers"] = {**kwargs.get("headers", {}), "cookie": "; ".join(f"{k}={v}" for k, v in cookies.items())}
            if "data" in kwargs and isinstance(kwargs["data"], (bytes, str)):
                kwargs["content"] = kwargs.pop("data")
            counts[service] = counts.get(service, 0) + 1
            try:
                response = await client.request(method, url, **kwargs)
            except Exception as exc:  # noqa: BLE001 - an exception out of the app is a 500 in production
                failures.append(f"{service} {method} {path} {case.path_parameters} q={case.query} body={str(case.body)[:500]}: raised {type(exc).__name__}: {str(exc)[:300]}")
                continue
            reached[service] = reached.get(service, 0) + (response.status_code < 300)
            if response.status_code >= 500:
                failures.append(f"{service} {method} {path} {case.path_parameters} q={case.query}: {response.status_code} {response.text[:300]}")
    print(f"real-id fuzz: {counts} requests, {reached} answered 2xx")
    assert sum(counts.values()) > 0
    assert not failures, f"{len(failures)} server errors:\n" + "\n".join(failures)
