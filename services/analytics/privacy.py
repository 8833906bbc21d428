"""What retention and erasure mean in analytics (the plumbing is shared.privacy).

Analytics keeps one row per invited citizen and per answer (the microdata behind the design-based
variance), keyed by pseudonym. A purged round keeps every row, with the pseudonym replaced by a
random one: the figures do not move, and nothing leads back to a person. An erased citizen's
rows are deleted and the tallies they were counted in are decremented in the same transaction,
so the published figures follow at the next recompute.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import sqlalchemy as sa

from services.analytics.domain.answers import answer_code
from services.analytics.domain.publication import NO_ARM
from services.analytics.handlers import touch_round
from services.analytics.models import AUDIT, AnswerTally, FollowupInvited, Invited, RateTally, ResponseFact, RoundState
from shared.bus import UnitOfWork
from shared.privacy import PrivacyRules, rows_with_pseudonyms

ANONYMOUS = "anon-"


def _random_pseudonym():
    return sa.literal(ANONYMOUS) + sa.cast(sa.func.gen_random_uuid(), sa.Text)


async def purge_round(uow: UnitOfWork, round_id: str) -> dict[str, int]:
    invited = await uow.session.execute(
        sa.update(Invited)
        .where(Invited.round_id == round_id, ~Invited.pseudonym.startswith(ANONYMOUS))
        .values(pseudonym=_random_pseudonym())
    )
    facts = await uow.session.execute(
        sa.update(ResponseFact)
        .where(ResponseFact.round_id == round_id, ~ResponseFact.pseudonym.startswith(ANONYMOUS))
        .values(pseudonym=_random_pseudonym())
    )
    followup = await uow.session.execute(
        sa.update(FollowupInvited)
        .where(FollowupInvited.round_id == round_id, ~FollowupInvited.pseudonym.startswith(ANONYMOUS))
        .values(pseudonym=_random_pseudonym())
    )
    return {"invited": invited.rowcount, "response_fact": facts.rowcount, "followup_invited": followup.rowcount}


async def identifiers_left_in_round(uow: UnitOfWork, round_id: str) -> int:
    invited = await uow.session.scalar(
        sa.select(sa.func.count()).select_from(Invited).where(Invited.round_id == round_id, ~Invited.pseudonym.startswith(ANONYMOUS))
    )
    facts = await uow.session.scalar(
        sa.select(sa.func.count())
        .select_from(ResponseFact)
        .where(ResponseFact.round_id == round_id, ~ResponseFact.pseudonym.startswith(ANONYMOUS))
    )
    followup = await uow.session.scalar(
        sa.select(sa.func.count()).select_from(FollowupInvited)
        .where(FollowupInvited.round_id == round_id, ~FollowupInvited.pseudonym.startswith(ANONYMOUS))
    )
    return invited + facts + followup


async def erase_citizens(uow: UnitOfWork, pseudonyms: Sequence[str]) -> dict[str, int]:
    facts = (
        await uow.session.execute(
            sa.delete(ResponseFact)
            .where(ResponseFact.pseudonym.in_(pseudonyms))
            .returning(
                ResponseFact.round_id, ResponseFact.stratum, ResponseFact.gender, ResponseFact.age_band,
                ResponseFact.duration_band, ResponseFact.kommunekode, ResponseFact.maalgruppe, ResponseFact.arm,
                ResponseFact.mode, ResponseFact.language, ResponseFact.answers,
            )
        )
    ).all()
    invited = (
        await uow.session.execute(
            sa.delete(Invited)
            .where(Invited.pseudonym.in_(pseudonyms))
            .returning(Invited.round_id, Invited.stratum, Invited.arm)
        )
    ).all()
    followup = (
        await uow.session.execute(
            sa.delete(FollowupInvited).where(FollowupInvited.pseudonym.in_(pseudonyms)).returning(FollowupInvited.round_id)
        )
    ).all()
    tallies: Counter = Counter()
    answered: Counter = Counter()
    for f in facts:
        answered[(f.round_id, f.stratum, f.arm or NO_ARM, f.mode, f.language)] += 1
        for question, value in f.answers.items():
            if (code := answer_code(value)) is not None:
                tallies[(f.round_id, f.stratum, f.gender, f.age_band, f.duration_band, question, code)] += 1
    for key, n in sorted(tallies.items()):
        round_id, stratum, gender, age_band, duration_band, question, code = key
        await uow.session.execute(
            sa.update(AnswerTally)
            .where(
                AnswerTally.round_id == round_id, AnswerTally.stratum == stratum, AnswerTally.gender == gender,
                AnswerTally.age_band == age_band, AnswerTally.duration_band == duration_band,
                AnswerTally.question == question, AnswerTally.code == code,
            )
            .values(n=AnswerTally.n - n)
        )
    # The invited are counted without mode and language, the answered with theirs (models.RateTally).
    invited_counts = Counter((i.round_id, i.stratum, i.arm or NO_ARM, "", "") for i in invited)
    for key in sorted(set(answered) | set(invited_counts)):
        round_id, stratum, arm, mode, language = key
        await uow.session.execute(
            sa.update(RateTally)
            .where(RateTally.round_id == round_id, RateTally.stratum == stratum, RateTally.arm == arm,
                   RateTally.mode == mode, RateTally.language == language)
            .values(invited=RateTally.invited - invited_counts[key], answered=RateTally.answered - answered[key])
        )
    for round_id in sorted({f.round_id for f in facts} | {i.round_id for i in invited} | {r.round_id for r in followup}):
        await touch_round(uow, round_id)  # the published tables are recomputed from the tallies
        # Counts went down, which no new fact shows: builders reload the round in full.
        await uow.session.execute(
            sa.update(RoundState).where(RoundState.round_id == round_id).values(counts_reset_version=RoundState.version)
        )
    return {"response_fact": len(facts), "invited": len(invited), "followup_invited": len(followup)}


RULES = PrivacyRules(
    service="analytics",
    purge_round=purge_round,
    identifiers_left_in_round=identifiers_left_in_round,
    erase_citizens=erase_citizens,
    rows_left_for_citizens=rows_with_pseudonyms(ResponseFact, Invited, FollowupInvited),
    audit_table=AUDIT,
)
