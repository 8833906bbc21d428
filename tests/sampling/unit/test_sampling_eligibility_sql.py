"""The eligibility rule has one home, ``domain.exclusions``: the SQL that counts the frame, draws
from it and checks it for duplicates is generated from it (``service.eligible_sql``). Here the
generated condition runs in a real PostgreSQL over every combination of reasons and must say
what ``apply_exclusions`` says."""

from __future__ import annotations

import asyncio
from itertools import product

import asyncpg
import pytest

from services.sampling.domain import UNIT_FLAGS, ExclusionReason, FrameUnit, apply_exclusions
from services.sampling.service import eligible_sql, unit_conditions
from shared.testing.fixtures import create_test_database


def test_every_reason_has_a_condition():
    with pytest.raises(ValueError):
        eligible_sql({ExclusionReason.DECEASED: "true"})
    assert set(UNIT_FLAGS) | {ExclusionReason.RECENTLY_SAMPLED} == set(ExclusionReason)


def test_the_generated_sql_is_the_domains_rule(postgres_admin_url):
    combinations = list(product([False, True], repeat=len(ExclusionReason)))
    flags = list(UNIT_FLAGS.values())
    units, recent = [], set()
    for i, combination in enumerate(combinations):
        applies = dict(zip(ExclusionReason, combination))
        units.append(FrameUnit(f"u{i}", "101", "dagpenge", **{flag: applies[reason] for reason, flag in UNIT_FLAGS.items()}))
        if applies[ExclusionReason.RECENTLY_SAMPLED]:
            recent.add(f"u{i}")
    domain = apply_exclusions(units, [recent])
    expected = {u.unit_id for u in domain.eligible}
    assert 0 < len(expected) < len(units)

    async def eligible_in_sql() -> set[str]:
        url = await create_test_database(postgres_admin_url)
        conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
        try:
            await conn.execute(
                f"CREATE TEMP TABLE unit (id text, {', '.join(f'{f} boolean' for f in flags)}, recently_sampled boolean)"
            )
            await conn.copy_records_to_table(
                "unit",
                records=[
                    (u.unit_id, *(getattr(u, f) for f in flags), u.unit_id in recent) for u in units
                ],
            )
            condition = eligible_sql(unit_conditions("u", "u.recently_sampled"))
            return {r["id"] for r in await conn.fetch(f"SELECT id FROM pg_temp.unit u WHERE {condition}")}
        finally:
            await conn.close()

    assert asyncio.run(eligible_in_sql()) == expected
