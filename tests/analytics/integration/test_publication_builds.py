"""How a live round's publication is built and released, against real PostgreSQL, with the
handlers called as the consumer calls them (one transaction per batch):

* a builder's counts held between builds (only the facts counted since are read) equal a full
  load of the tallies and respondents at every version: through batches of any size,
  duplicates, rounds sharing a batch, other handlers bumping the version, and an erasure;
* the release loop hears of a committed change (LISTEN/NOTIFY), with no poll to wait for, and
  releases the round once it has been quiet.
"""

from __future__ import annotations

import asyncio
import random

from services.analytics.builder import RESPONDENTS, HeldCounts, ThreadBuilder, load_and_build, load_grouped, round_info
from services.analytics.handlers import on_invitations_sent, on_responses_submitted, on_sample_drawn
from services.analytics.main import MIGRATIONS
from services.analytics.models import BUS
from services.analytics.privacy import erase_citizens
from services.analytics.service import Releases, RoundChanges
from services.analytics.synthetic import synthetic_round
from shared.bus import UnitOfWork
from shared.db import make_engine, make_sessionmaker, migrate
from shared.events import Envelope


def wrapped(events) -> list[tuple[Envelope, object]]:
    return [(Envelope.wrap(e, source="test", correlation_id="held-counts"), e) for e in events]


def as_dict(grouped) -> dict[tuple, tuple]:
    """Grouped counts by key, groups without answers left out (a full load never has them)."""
    return {(h, d, lvl, q): tuple(c) for h, d, lvl, q, c in grouped if any(c)}


async def test_held_counts_equal_a_full_load_at_every_version(database_url):
    engine = make_engine(database_url)
    await migrate(engine, MIGRATIONS, "analytics")
    sessions = make_sessionmaker(engine)

    async def in_transaction(handler, *args) -> None:
        async with UnitOfWork(sessions, BUS, source="test") as uow:
            await handler(uow, *args)
            await uow.commit()

    async def full(round_id: str) -> dict:
        async with sessions() as session, session.begin():
            return as_dict(await load_grouped(_Uow(session), round_id))

    rng = random.Random(7)
    one = synthetic_round("r-1", ["101", "147"], respondents=240, seed=3)
    two = synthetic_round("r-2", ["751"], respondents=60, seed=4)
    for sample in one.samples + two.samples:
        await in_transaction(on_sample_drawn, *wrapped([sample])[0])
    responses = one.responses + two.responses
    rng.shuffle(responses)  # batches mix the two rounds

    held = HeldCounts()
    builds = 0
    start = 0
    while start < len(responses):
        size = rng.choice([1, 2, 5, 17, 40])
        batch = responses[start : start + size]
        start += size
        if rng.random() < 0.3 and start > size:
            batch = batch + responses[: rng.randint(1, 5)]  # redelivered answers count once
        await in_transaction(on_responses_submitted, wrapped(batch))
        if rng.random() < 0.3:  # another handler bumps the version with no new answer
            await in_transaction(on_invitations_sent, wrapped(rng.sample(one.invitations, 3)))
        if rng.random() < 0.5:
            for round_id in ("r-1", "r-2"):
                result = await load_and_build(sessions, round_id, 5, 20, held=held)
                builds += 1
                async with sessions() as session, session.begin():
                    assert as_dict(await held.grouped(_Uow(session), round_id)) == await full(round_id)
                fresh = await load_and_build(sessions, round_id, 5, 20)
                assert result.info == fresh.info and result.publication == fresh.publication
    assert held.full_loads == 2 and held.facts_added > 0, "the round was loaded in full once, then only what was new"
    # Respondents: each fact once per stratum's total and under each of its bands.
    counted = await full("r-1")
    people = {r.pseudonym for r in one.responses}
    for dimension in ("total", "gender", "age_band", "duration_band"):
        assert sum(c[0] for (_, d, _, q), c in counted.items() if q == RESPONDENTS and d == dimension) == len(people)

    # An erasure lowers counts, which no new fact shows: the held counts are reloaded in full.
    before = await full("r-1")
    erased = [r.pseudonym for r in one.responses[:3]]
    async with UnitOfWork(sessions, BUS, source="test") as uow:
        await erase_citizens(uow, erased)
        await uow.commit()
    async with sessions() as session, session.begin():
        after = as_dict(await held.grouped(_Uow(session), "r-1"))
    assert after == await full("r-1") and held.full_loads == 3
    assert sum(map(sum, after.values())) < sum(map(sum, before.values()))
    await engine.dispose()


class _Uow:
    def __init__(self, session) -> None:
        self.session = session


async def test_a_committed_change_starts_the_quiet_clock_without_a_poll(database_url):
    engine = make_engine(database_url)
    await migrate(engine, MIGRATIONS, "analytics")
    sessions = make_sessionmaker(engine)

    def uow() -> UnitOfWork:
        return UnitOfWork(sessions, BUS, source="test")

    async def submit(responses) -> None:
        async with uow() as unit:
            await on_responses_submitted(unit, wrapped(responses))
            await unit.commit()

    rnd = synthetic_round("r-1", ["101"], respondents=40, seed=5)
    # An hour between polls: only the notification tells the loop of a change in this test.
    releases = Releases(uow, 5, 20, quiet=0.3, interval=3600, poll=3600, builder=ThreadBuilder(uow))
    changes = RoundChanges(database_url, releases.round_changed)
    tasks = [asyncio.create_task(releases.run()), asyncio.create_task(changes.run())]
    try:
        await asyncio.wait_for(changes.listening.wait(), 30)
        await submit(rnd.responses[:20])
        async with asyncio.timeout(30):
            while (found := await _released(releases, uow)) is None:
                await asyncio.sleep(0.05)
        assert found == 1
        await submit(rnd.responses[20:])
        async with asyncio.timeout(30):
            while (found := await _released(releases, uow)) == 1:
                await asyncio.sleep(0.05)
        async with uow() as unit:
            release = await releases.latest(unit, "r-1")
            now = await round_info(unit, "r-1")
        assert release.info.release == 2 and release.info.version == now.version  # every answer is in it
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await engine.dispose()


async def _released(releases: Releases, uow) -> int | None:
    async with uow() as unit:
        listed = await releases.list(unit, "r-1")
    return listed[-1].release if listed else None
