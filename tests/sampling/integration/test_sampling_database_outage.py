"""Every service's API answers a database out of reach with 503 and Retry-After, never 500
(shared/app.py: ``database_errors``): sampling served over real HTTP through a TCP proxy in front
of the test PostgreSQL that the test takes away and brings back (shared/testing/outage.py)."""

from __future__ import annotations

import httpx

from services.sampling.config import SamplingSettings
from services.sampling.main import create_app
from shared.app import DATABASE_RETRY_AFTER_SECONDS
from shared.testing.fixtures import bearer, served, settings_from_env
from shared.testing.outage import Outage


async def test_an_api_read_while_the_database_is_away_is_a_503_to_retry(service_env, dev_issuer):
    outage = Outage.in_front_of(service_env["DATABASE_URL"])
    env = {**service_env, "DATABASE_URL": await outage.proxied_url(service_env["DATABASE_URL"])}
    token = bearer(dev_issuer.mint("kl-operator", ["rounds:admin", "kommuner:all"]))
    try:
        async with served(create_app(settings_from_env(SamplingSettings, env)), lifespan="on") as base, httpx.AsyncClient(base_url=base) as client:
            # A round sampling has not learnt: the database says so.
            before = await client.get("/rounds/r-outage/frame", headers=token)
            assert before.status_code == 404 and "not defined" in before.text, before.text
            outage.down()
            try:
                for _ in range(3):  # a pooled connection cut, then new ones refused
                    r = await client.get("/rounds/r-outage/frame", headers=token)
                    assert r.status_code == 503, r.text
                    assert r.headers["retry-after"] == str(DATABASE_RETRY_AFTER_SECONDS)
                    assert r.json() == {"detail": "the database cannot be reached right now; try again shortly"}
            finally:
                outage.up()  # the service's shutdown waits for its database
            after = await client.get("/rounds/r-outage/frame", headers=token)
            assert after.status_code == 404 and after.json() == before.json()
    finally:
        await outage.stop()
