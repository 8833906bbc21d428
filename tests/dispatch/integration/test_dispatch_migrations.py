"""Migrations 0003 (contacts released apart from the sample) and 0004 (rounds' definitions
schedule the steps) on a database that has rows from before them, down again, and up again."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from alembic import command

from services.dispatch.main import MIGRATIONS
from shared.db import alembic_config, make_engine, migrate

INVITATION = """
    INSERT INTO dispatch.invitation (id, round_id, kommunekode, pseudonym, token_nonce, token_hash, maalgruppe, stratum,
                                     contact, status, expires_at)
    VALUES (gen_random_uuid(), 'r1', '101', :pseudonym, '\\x00', :pseudonym, 'Dagpenge', '101:Dagpenge',
            CAST(:contact AS jsonb), 'active', now())
"""
SEALED = '{"key_id": "k1", "nonce": "bm9uY2U=", "ciphertext": "c2VhbGVk"}'


def _downgrade(connection, revision: str) -> None:
    config = alembic_config(MIGRATIONS, "dispatch")
    config.attributes["connection"] = connection
    command.downgrade(config, revision)


async def test_0003_keeps_old_invitations_and_downgrades_without_the_contactless(database_url):
    engine = make_engine(database_url)
    try:
        await migrate(engine, MIGRATIONS, "dispatch", revision="d090")
        async with engine.begin() as conn:
            await conn.execute(sa.text(INVITATION), {"pseudonym": "with-contact", "contact": SEALED})

        await migrate(engine, MIGRATIONS, "dispatch")
        async with engine.begin() as conn:
            await conn.execute(sa.text(INVITATION), {"pseudonym": "waiting", "contact": None})
            await conn.execute(sa.text("INSERT INTO dispatch.released_contact (round_id, pseudonym, kommunekode, contact)"
                                       " VALUES ('r1', 'early', '101', NULL)"))
            kept = await conn.scalar(sa.text("SELECT contact FROM dispatch.invitation WHERE pseudonym = 'with-contact'"))
        assert kept["ciphertext"] == "c2VhbGVk"

        async with engine.begin() as conn:
            await conn.run_sync(_downgrade, "d090")
            left = (await conn.execute(sa.text("SELECT pseudonym FROM dispatch.invitation"))).scalars().all()
            nullable = await conn.scalar(sa.text(
                "SELECT is_nullable FROM information_schema.columns"
                " WHERE table_schema = 'dispatch' AND table_name = 'invitation' AND column_name = 'contact'"))
            released = await conn.scalar(sa.text("SELECT to_regclass('dispatch.released_contact')"))
        assert left == ["with-contact"] and nullable == "NO" and released is None

        await migrate(engine, MIGRATIONS, "dispatch")
    finally:
        await engine.dispose()


STEP = """
    INSERT INTO dispatch.dispatch_step (invitation_id, step, channel, due_at, status, attempts)
    SELECT id, :step, 'letter', CAST(:due AS timestamptz), :status, 0 FROM dispatch.invitation WHERE pseudonym = :pseudonym
"""


async def test_0004_unsent_steps_wait_for_their_rounds_definition_and_keep_their_interval(database_url):
    engine = make_engine(database_url)
    try:
        await migrate(engine, MIGRATIONS, "dispatch", revision="0003")
        async with engine.begin() as conn:
            await conn.execute(sa.text(INVITATION), {"pseudonym": "planned", "contact": SEALED})
            start = datetime(2026, 9, 1, 8, tzinfo=UTC)
            for step, due, status in (("invitation", start, "sent"), ("reminder_1", start + timedelta(days=7), "planned"),
                                      ("reminder_2", start + timedelta(days=14), "planned")):
                await conn.execute(sa.text(STEP), {"step": step, "due": due, "status": status, "pseudonym": "planned"})

        await migrate(engine, MIGRATIONS, "dispatch")
        async with engine.begin() as conn:
            rows = dict((step, (due, interval)) for step, due, interval in (await conn.execute(sa.text(
                "SELECT step, due_at, interval_days FROM dispatch.dispatch_step"))).all())
        assert rows["invitation"][0] is not None and rows["invitation"][1] is None  # sent: kept as it was
        assert rows["reminder_1"] == (None, 7.0) and rows["reminder_2"] == (None, 7.0)

        async with engine.begin() as conn:
            await conn.execute(sa.text("UPDATE dispatch.dispatch_step SET status = 'cancelled' WHERE step = 'reminder_2'"))
            await conn.run_sync(_downgrade, "0003")
            left = dict((await conn.execute(sa.text("SELECT step, status FROM dispatch.dispatch_step"
                                                     " WHERE due_at IS NOT NULL"))).all())
        assert left == {"invitation": "sent", "reminder_1": "planned", "reminder_2": "skipped"}
        await migrate(engine, MIGRATIONS, "dispatch")
    finally:
        await engine.dispose()


async def test_0005_steps_sending_at_the_upgrade_count_as_handed_over_and_0006_adds_the_tombstones(database_url):
    engine = make_engine(database_url)
    try:
        await migrate(engine, MIGRATIONS, "dispatch", revision="0004")
        async with engine.begin() as conn:
            await conn.execute(sa.text(INVITATION), {"pseudonym": "mid-send", "contact": SEALED})
            await conn.execute(sa.text(STEP), {"step": "invitation", "due": datetime(2026, 9, 1, tzinfo=UTC), "status": "sending",
                                               "pseudonym": "mid-send"})
            await conn.execute(sa.text(STEP), {"step": "reminder_1", "due": None, "status": "planned", "pseudonym": "mid-send"})
            await conn.execute(sa.text("UPDATE dispatch.dispatch_step SET sending_since = now() WHERE status = 'sending'"))

        await migrate(engine, MIGRATIONS, "dispatch")
        async with engine.begin() as conn:
            # Claimed by a sender that did not stamp: maybe delivered, so resent with its key.
            stamped = dict((await conn.execute(sa.text(
                "SELECT step, handed_over_at IS NOT NULL FROM dispatch.dispatch_step"))).all())
            tombstones = await conn.scalar(sa.text("SELECT count(*) FROM dispatch.privacy_tombstone"))
        assert stamped == {"invitation": True, "reminder_1": False} and tombstones == 0

        async with engine.begin() as conn:
            await conn.run_sync(_downgrade, "0004")
            assert await conn.scalar(sa.text("SELECT to_regclass('dispatch.privacy_tombstone')")) is None
        await migrate(engine, MIGRATIONS, "dispatch")
    finally:
        await engine.dispose()
