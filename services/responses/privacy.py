"""What retention and erasure mean in responses (the plumbing is shared.privacy).

The answers stay: they are what the round was for. What goes is every way back to the person:
the pseudonym (replaced by a random one, so the answers still count once each), the link's token
hash (the letter the citizen holds), its answer id (the paper questionnaire the citizen holds) and
unsubmitted drafts. An erased citizen's link and answers are deleted outright. Both leave a
tombstone (shared.privacy): a link.issued arriving later (a replay, a consumer behind) opens no
link again.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from services.responses.models import AUDIT, TOMBSTONES, InterviewRow, Respondent, Response
from shared.bus import UnitOfWork
from shared.privacy import PrivacyRules, rows_with_pseudonyms

ANONYMOUS = "anon-"  # prefix of the random stand-ins; a real pseudonym is 64 hex digits
_PURGED_TOKEN = "purged-"


async def purge_round(uow: UnitOfWork, round_id: str) -> dict[str, int]:
    # response.token_hash follows by ON UPDATE CASCADE (migration 0003).
    result = await uow.session.execute(
        sa.update(Respondent)
        .where(Respondent.round_id == round_id, ~Respondent.pseudonym.startswith(ANONYMOUS))
        .values(
            pseudonym=sa.literal(ANONYMOUS) + sa.cast(sa.func.gen_random_uuid(), sa.Text),
            token_hash=sa.literal(_PURGED_TOKEN) + sa.cast(sa.func.gen_random_uuid(), sa.Text),
            answer_id=None,
            draft={},
        )
    )
    # Phone numbers and who was called: nothing of them is kept once the round is purged.
    interviews = await uow.session.execute(sa.delete(InterviewRow).where(InterviewRow.round_id == round_id))
    return {"respondent": result.rowcount, "interview": interviews.rowcount}


async def identifiers_left_in_round(uow: UnitOfWork, round_id: str) -> int:
    interviews = await uow.session.scalar(
        sa.select(sa.func.count()).select_from(InterviewRow).where(InterviewRow.round_id == round_id)
    )
    return interviews + await uow.session.scalar(
        sa.select(sa.func.count())
        .select_from(Respondent)
        .where(
            Respondent.round_id == round_id,
            sa.or_(~Respondent.pseudonym.startswith(ANONYMOUS), ~Respondent.token_hash.startswith(_PURGED_TOKEN),
                   Respondent.answer_id.is_not(None)),
        )
    )


async def erase_citizens(uow: UnitOfWork, pseudonyms: Sequence[str]) -> dict[str, int]:
    tokens = sa.select(Respondent.token_hash).where(Respondent.pseudonym.in_(pseudonyms))
    answers = await uow.session.execute(sa.delete(Response).where(Response.token_hash.in_(tokens)))
    links = await uow.session.execute(sa.delete(Respondent).where(Respondent.pseudonym.in_(pseudonyms)))
    interviews = await uow.session.execute(sa.delete(InterviewRow).where(InterviewRow.pseudonym.in_(pseudonyms)))
    return {"response": answers.rowcount, "respondent": links.rowcount, "interview": interviews.rowcount}


RULES = PrivacyRules(
    service="responses",
    purge_round=purge_round,
    identifiers_left_in_round=identifiers_left_in_round,
    erase_citizens=erase_citizens,
    rows_left_for_citizens=rows_with_pseudonyms(Respondent, InterviewRow),
    audit_table=AUDIT,
    tombstones=TOMBSTONES,  # a late link.issued brings back no link of a purged round or an erased citizen
)
