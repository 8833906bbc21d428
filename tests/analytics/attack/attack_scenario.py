"""A generated round through the running analytics service: real events on the real broker,
releases cut by the KL operator, and every table read over HTTP by two readers (all
municipalities, and one municipality). The truth (every answer sent) is kept apart."""

from __future__ import annotations

import asyncio
import time

import asyncpg

from attack_harvest import Published, harvest
from attack_ilp import Attack, Knowledge
from attack_rounds import AGE_BANDS, DURATION_BANDS, GENDERS, GROUPS, Round
from shared.db import to_plain_url
from shared.testing.fixtures import bearer, publish_events


class Service:
    def __init__(self, client, issuer, bootstrap: str, prefix: str, database_url: str, rnd: Round):
        self.client, self.bootstrap, self.prefix, self.database_url, self.round = client, bootstrap, prefix, database_url, rnd
        self.national = issuer.mint("kl-reader", ["aggregates:read", "kommuner:all"])
        self.bound_kommune = rnd.kommuner[-1]
        self.municipal = issuer.mint("kommune-reader", ["aggregates:read"], [self.bound_kommune])
        self.operator = issuer.mint("kl-operator", ["rounds:admin", "aggregates:read", "kommuner:all"])
        self.releases = True

    async def send(self, events) -> None:
        await publish_events(self.bootstrap, self.prefix, events)

    async def wait_consumed(self, timeout: float = 60) -> None:
        """Until analytics holds every invitation and answer sent (read from its database: the
        published tables may by design not show them yet)."""
        conn = await asyncpg.connect(to_plain_url(self.database_url))
        want = (len(self.round.invitations), len(self.round.responses))
        try:
            async with asyncio.timeout(timeout):
                while True:
                    try:
                        got = (
                            await conn.fetchval("SELECT count(*) FROM analytics.invited WHERE round_id = $1", self.round.round_id),
                            await conn.fetchval("SELECT count(*) FROM analytics.response_fact WHERE round_id = $1", self.round.round_id),
                        )
                    except asyncpg.UndefinedTableError:
                        got = None
                    if got == want:
                        return
                    await asyncio.sleep(0.1)
        finally:
            await conn.close()

    async def cut(self, phase: str = "preliminary", scope: str | None = None) -> dict:
        """The KL operator cuts a release (``scope``: a preliminary's, None the configured one)."""
        body = {"phase": phase} | ({"scope": scope} if scope else {})
        r = await self.client.post(f"/rounds/{self.round.round_id}/releases", json=body, headers=bearer(self.operator))
        assert r.status_code == 201, r.text
        release = r.json()
        await self.served(release["release"])
        return release

    async def served(self, number: int, timeout: float = 30) -> None:
        """Until reads serve release ``number`` (or a later one)."""
        async with asyncio.timeout(timeout):
            while True:
                r = await self.client.get(f"/rounds/{self.round.round_id}/response-rates", headers=bearer(self.national))
                if r.status_code == 200 and r.json().get("release", 0) >= number:
                    return
                await asyncio.sleep(0.05)

    async def listed(self) -> list[dict]:
        r = await self.client.get(f"/rounds/{self.round.round_id}/releases", headers=bearer(self.national))
        assert r.status_code == 200, r.text
        return r.json()

    async def read(self) -> tuple[Published, Published]:
        kommuner = self.round.kommuner
        national = await harvest(self.client, self.national, self.round.round_id, kommuner)
        municipal = await harvest(self.client, self.municipal, self.round.round_id, kommuner)
        listed = await self.client.get(f"/rounds/{self.round.round_id}/releases", headers=bearer(self.national))
        national.meta["releases"] = listed.json() if listed.status_code == 200 else None
        return national, municipal


def knowledge(rnd: Round, pub: Published, *, form_requires_answers: bool) -> Knowledge:
    """Public knowledge: the round's strata and N_h (sample.drawn), the form's bands and
    questions, the arms the rate table lists, the method's threshold (the tables say it)."""
    arms = tuple(sorted({lv for (dim, _, lv) in pub.rates if dim == "arm" and lv != "total"}))
    return Knowledge(
        kommuner=sorted({k for k, _ in rnd.population}),
        groups=list(GROUPS),
        levels={"gender": GENDERS, "age_band": AGE_BANDS, "duration_band": DURATION_BANDS},
        arms=arms,
        questions=rnd.questions,
        population=dict(rnd.population),
        form_requires_answers=form_requires_answers,
        threshold=int(pub.meta.get("suppression_threshold", 5)),
    )


def prepared(know: Knowledge, releases: list[Published], blocks: list[list]) -> Attack:
    """The attacker's program over the releases, checked against the truth (a program the truth
    does not satisfy would be a wrong model of the publication, not an attack), weights resolved."""
    started = time.perf_counter()
    attack = Attack(know, releases)
    wrong = attack.check_truth(blocks)
    assert not wrong, f"the attacker's reading of the publication contradicts the truth: {wrong[:5]}"
    attack.pool.append(attack.truth_vector(blocks))
    attack.resolve_weights()
    wrong = attack.check_truth(blocks)
    assert not wrong, f"weighted equations contradict the truth (weights misread): {wrong[:5]}"
    attack.prepare_seconds = time.perf_counter() - started
    return attack
