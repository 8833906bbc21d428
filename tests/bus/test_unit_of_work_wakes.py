"""A commit that wrote events wakes the relays, whether the events were published through the
unit of work or written in SQL into a bulk outbox (ingest's population chunks, sampling's draw),
so they go out without waiting for the relay's next poll."""

from __future__ import annotations

import sqlalchemy as sa

from shared.bus import UnitOfWork, bus_tables
from shared.db import make_base, make_engine, make_sessionmaker


async def test_events_written_in_sql_wake_the_relays_at_commit(database_url):
    engine = make_engine(database_url)
    wakes: list[int] = []
    tables = bus_tables(make_base("uow_wakes").metadata)

    def unit() -> UnitOfWork:
        return UnitOfWork(make_sessionmaker(engine), tables, source="test", on_commit=lambda: wakes.append(1))

    try:
        async with unit() as uow:
            await uow.session.execute(sa.text("SELECT 1"))
            await uow.commit()
        assert wakes == []  # nothing written: nothing to wake

        async with unit() as uow:
            uow.events_written()
            await uow.commit()
        assert wakes == [1]

        async with unit() as uow:
            uow.events_written()
            await uow.rollback()  # rolled back: the events are gone, nobody is woken
            await uow.commit()
        assert wakes == [1]

        async with unit() as uow:
            uow.events_written()
            await uow.commit()
            await uow.commit()  # the flag belongs to the transaction that wrote them
        assert wakes == [1, 1]
    finally:
        await engine.dispose()
