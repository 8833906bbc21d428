"""The database's check on a round's phase names exactly the phases of the rules
(services.ingest.domain.rounds.PHASES): the model builds its constraint from them, and the
migration that created the table wrote them out, so a phase added to the rules without a
migration fails here rather than on the first round that reaches it."""

from __future__ import annotations

import re
from pathlib import Path

import sqlalchemy as sa

from services.ingest.domain.rounds import PHASES, TRANSLATION_STATUSES
from services.ingest.models import RoundDefinition
from shared.db import make_engine, migrate

MIGRATIONS = Path(__file__).resolve().parents[2] / "services" / "ingest" / "migrations"


def _phases(check: str) -> list[str]:
    return re.findall(r"'([a-z_]+)'", check)


async def test_the_migrated_phase_check_is_the_rules_phases(database_url):
    engine = make_engine(database_url)
    try:
        await migrate(engine, MIGRATIONS, "ingest")
        async with engine.connect() as connection:
            checks = dict(
                (
                    await connection.execute(
                        sa.text(
                            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint"
                            " WHERE conrelid = 'ingest.round_definition'::regclass AND contype = 'c'"
                        )
                    )
                ).all()
            )
    finally:
        await engine.dispose()
    modelled = {c.name: c for c in RoundDefinition.__table__.constraints if isinstance(c, sa.CheckConstraint)}
    assert sorted(checks) == sorted(modelled), checks
    (phase,) = [name for name in modelled if name.endswith("_phase_known")]
    assert sorted(_phases(checks[phase])) == sorted(PHASES)
    assert _phases(str(modelled[phase].sqltext)) == list(PHASES)
    # The review statuses a round may require (i097): the contract's.
    (status,) = [name for name in modelled if name.endswith("_translation_status")]
    assert sorted(_phases(checks[status])) == sorted(TRANSLATION_STATUSES) == sorted(_phases(str(modelled[status].sqltext)))
