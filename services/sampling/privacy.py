"""What retention and erasure mean in sampling (the plumbing is shared.privacy).

A closed round's frame goes: its units (pseudonym, target group, bands, exclusion flags) and
the duplicate candidates recorded with them; the counts go with the units they count. There is
no contact data to purge: population.received v2 carries none (ingest keeps the contacts), the
handler ignores v1's, and migration 0007 dropped the sealed contacts the frame used to hold.
What stays is the draw (strata, counts, margins, weights) and, per sampled person, the
pseudonym in ``sampled_unit``: the rule "not sampled in the last N rounds" (sparing
respondents, seed 001) needs to recognise the person next round. It holds no contact data and
no answers (responses and analytics replace the pseudonym in theirs), and is kept only as long
as that rule looks back (docs/data-map.md). An erased or objecting citizen goes from both.
Both leave a tombstone (shared.privacy): a population chunk arriving late puts nothing back.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from services.sampling import frame
from services.sampling.models import AUDIT, TOMBSTONES, FrameCell, FrameDelivery, FrameDuplicate, FrameUnit, SampledUnit
from shared.bus import UnitOfWork
from shared.privacy import PrivacyRules, rows_with_pseudonyms


def _round_deliveries(round_id: str):
    return sa.select(FrameDelivery.delivery_id).where(FrameDelivery.round_id == round_id)


async def purge_round(uow: UnitOfWork, round_id: str) -> dict[str, int]:
    deliveries = _round_deliveries(round_id)
    result = await uow.session.execute(sa.delete(FrameUnit).where(FrameUnit.delivery_id.in_(deliveries)))
    duplicates = await uow.session.execute(sa.delete(FrameDuplicate).where(FrameDuplicate.delivery_id.in_(deliveries)))
    # The counts go with the units they count (a purged frame counts as empty).
    await uow.session.execute(sa.delete(FrameCell).where(FrameCell.delivery_id.in_(deliveries)))
    return {"frame_unit": result.rowcount, "frame_duplicate": duplicates.rowcount}


async def identifiers_left_in_round(uow: UnitOfWork, round_id: str) -> int:
    """The round's rows that name a citizen (by pseudonym) after the purge: frame units and
    duplicate candidates. sampled_unit is the documented exception (see above)."""
    left = 0
    for table in (FrameUnit, FrameDuplicate):
        left += await uow.session.scalar(
            sa.select(sa.func.count()).select_from(table).where(table.delivery_id.in_(_round_deliveries(round_id)))
        )
    return left


async def erase_citizens(uow: UnitOfWork, pseudonyms: Sequence[str]) -> dict[str, int]:
    erased = (
        await uow.session.execute(sa.delete(FrameUnit).where(FrameUnit.pseudonym.in_(pseudonyms)).returning(FrameUnit.delivery_id))
    ).scalars().all()
    # The deliveries' counts must count the units that are left.
    await frame.refresh(uow.session, erased)
    duplicates = await uow.session.execute(sa.delete(FrameDuplicate).where(FrameDuplicate.pseudonym.in_(pseudonyms)))
    sampled = await uow.session.execute(sa.delete(SampledUnit).where(SampledUnit.pseudonym.in_(pseudonyms)))
    return {"frame_unit": len(erased), "frame_duplicate": duplicates.rowcount, "sampled_unit": sampled.rowcount}


RULES = PrivacyRules(
    service="sampling",
    purge_round=purge_round,
    identifiers_left_in_round=identifiers_left_in_round,
    erase_citizens=erase_citizens,
    rows_left_for_citizens=rows_with_pseudonyms(FrameUnit, FrameDuplicate, SampledUnit),
    audit_table=AUDIT,
    tombstones=TOMBSTONES,  # a late population chunk puts nothing of them back in the frame
)
