"""Interviews by phone: the interviewer's list, one citizen at a time, and the call's outcome.

Where the phone number comes from: dispatch, which holds the contacts ingest released, publishes
``interview.phones_released`` for rounds whose plan offers interviews, with each number alone
sealed under the interview key (docs/data-map.md, "Interviews by phone"). Responses stores it
sealed (``interview.phone``) beside the link it already has, so the list is one query over its own
tables: whether a citizen has answered is the link's status, the same row a web answer spends,
and an answer on the web takes the citizen off the list before the next call. The number is
opened only to show it on the interviewer's page, and every showing writes an audit row (who,
when, which interview; never the number).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert

from services.responses.config import ResponsesSettings
from services.responses.domain import Questionnaire, scrub_free_text, validate_answers
from services.responses.domain.interviews import CLAIM, claimed_by_other, may_call_sql
from services.responses.domain.rounds import closed_sql
from services.responses.models import AUDIT, InterviewRow, Respondent, RoundState
from services.responses.service import (
    FieldworkEnded,
    InvalidAnswers,
    LinkExpired,
    LinkUsed,
    ensure_round_open,
    questionnaire_of,
    record_answers,
    spend_link,
)
from shared.audit import record
from shared.auth import Principal
from shared.bus import UnitOfWork
from shared.crypto import SealedContact, open_phone
from shared.events import Envelope, InterviewPhonesReleased

PHONE_VIEW = "phone-number-view"  # the audit kind of a showing of a phone number

_I = InterviewRow.__table__.fullname
_R = Respondent.__table__.fullname
_S = RoundState.__table__.fullname

# The citizens an interviewer may call now (domain/interviews.py): the link open, the round not
# over, the calls so far allowing another, nobody else on the call. ``:everywhere`` for a
# principal with kommuner:all, else the municipalities it is bound to.
_CALLABLE = f"""
  FROM {_I} i
  JOIN {_R} r ON r.round_id = i.round_id AND r.pseudonym = i.pseudonym
  LEFT JOIN {_S} s ON s.round_id = i.round_id
 WHERE i.round_id = :round_id AND (:everywhere OR i.kommunekode = ANY(CAST(:kommuner AS text[])))
   AND i.phone IS NOT NULL
   AND r.status = 'open' AND r.expires_at > :now AND NOT coalesce({closed_sql('s', ':now')}, false)
   AND {may_call_sql('i', ':now')}
   AND (i.claimed_until IS NULL OR i.claimed_until <= :now OR i.claimed_by = :me)
"""
_NEXT = sa.text(
    "SELECT i.id" + _CALLABLE
    # The interviewer's own open call first (a reload shows the same citizen), then call backs
    # that are due, then the fewest calls so far.
    + " ORDER BY coalesce(i.claimed_by = :me AND i.claimed_until > :now, false) DESC, i.call_back_at NULLS LAST, i.calls, i.id"
    " LIMIT 1 FOR UPDATE OF i SKIP LOCKED"
)
_COUNT = sa.text("SELECT count(*)" + _CALLABLE)


class NotCallable(Exception):
    """The interview is not this interviewer's to record (another has the citizen on the phone)."""


class UnknownInterview(Exception):
    pass


@dataclass(frozen=True)
class Call:
    """What the interviewer's page shows: one citizen to call."""

    interview_id: uuid.UUID
    round_id: str
    kommunekode: str
    phone: str
    questionnaire: Questionnaire
    calls: int
    outcome: str | None
    call_back_at: datetime | None

    def __repr__(self) -> str:  # never let the number reach a log through repr()
        return f"Call({self.interview_id}, <phone redacted>)"


# --- the release (handler) ---------------------------------------------------------------------


async def on_phones_released(uow: UnitOfWork, envelope: Envelope, event: InterviewPhonesReleased) -> None:
    """Keep the sealed numbers; the first release of a citizen's number wins (a replay changes
    nothing). A round already purged takes none (a replay from the topic after the purge)."""
    if not event.phones:
        return
    phase = await uow.session.scalar(sa.select(RoundState.phase).where(RoundState.round_id == event.round_id))
    if phase == "purged":
        return
    await uow.session.execute(
        pg_insert(InterviewRow)
        .values([
            {"id": uuid.uuid4(), "round_id": event.round_id, "pseudonym": p.pseudonym, "kommunekode": event.kommunekode,
             "phone": p.phone.model_dump(), "calls": 0}
            for p in event.phones
        ])
        .on_conflict_do_nothing(constraint="uq_interview_round_pseudonym")
    )


# --- the list -----------------------------------------------------------------------------------


def _scope(principal: Principal, round_id: str, now: datetime) -> dict:
    return {"round_id": round_id, "everywhere": principal.all_kommuner, "kommuner": sorted(principal.kommunekoder),
            "now": now, "me": principal.subject}


async def waiting(uow: UnitOfWork, round_id: str, principal: Principal) -> int:
    """How many citizens of the round the interviewer may call now (their own current call included)."""
    return await uow.session.scalar(_COUNT, _scope(principal, round_id, datetime.now(UTC)))


async def next_call(
    uow: UnitOfWork, settings: ResponsesSettings, round_id: str, principal: Principal, *, action: str
) -> Call | None:
    """Claim the next citizen for the interviewer (their current call again, if they have one),
    open the phone number and audit the showing, in one transaction; None when nobody is left."""
    now = datetime.now(UTC)
    interview_id = await uow.session.scalar(_NEXT, _scope(principal, round_id, now))
    if interview_id is None:
        return None
    row = (
        await uow.session.execute(
            sa.update(InterviewRow)
            .where(InterviewRow.id == interview_id)
            .values(claimed_by=principal.subject, claimed_until=now + CLAIM, updated_at=now)
            .returning(InterviewRow)
        )
    ).scalar_one()
    respondent = (
        await uow.session.execute(
            sa.select(Respondent).where(Respondent.round_id == row.round_id, Respondent.pseudonym == row.pseudonym)
        )
    ).scalar_one()
    questionnaire = await questionnaire_of(uow, settings, respondent)
    phone = open_phone(SealedContact.model_validate(row.phone), round_id=row.round_id, pseudonym=row.pseudonym,
                       keyring=settings.interview_keyring)
    await record(
        uow.session, AUDIT, actor=principal.subject, action=action, kind=PHONE_VIEW, kommunekode=row.kommunekode,
        resource={"round_id": row.round_id, "interview_id": str(row.id)}, status=200,
    )
    await uow.commit()
    return Call(row.id, row.round_id, row.kommunekode, phone, questionnaire, row.calls, row.outcome, row.call_back_at)


# --- a call's outcome ---------------------------------------------------------------------------


async def _claim_for_outcome(
    uow: UnitOfWork, interview_id: uuid.UUID, round_id: str, principal: Principal, authorize: Callable[[str], None]
) -> InterviewRow:
    row = (
        await uow.session.execute(
            sa.select(InterviewRow).where(InterviewRow.id == interview_id, InterviewRow.round_id == round_id).with_for_update()
        )
    ).scalar_one_or_none()
    if row is None:
        raise UnknownInterview()
    authorize(row.kommunekode)  # before anything is revealed or written
    if claimed_by_other(row.claimed_by, row.claimed_until, principal.subject, datetime.now(UTC)):
        raise NotCallable()
    return row


async def complete(
    uow: UnitOfWork,
    settings: ResponsesSettings,
    interview_id: uuid.UUID,
    round_id: str,
    principal: Principal,
    answers: Mapping[str, object],
    *,
    language: str,
    authorize: Callable[[str], None],
) -> Respondent:
    """The answers given on the phone: validated against the citizen's questionnaire, the link
    spent (the same conditional UPDATE as a web or paper answer: one answer per link, whichever
    comes first), stored and published with mode ``phone``."""
    row = await _claim_for_outcome(uow, interview_id, round_id, principal, authorize)
    respondent = (
        await uow.session.execute(
            sa.select(Respondent).where(Respondent.round_id == row.round_id, Respondent.pseudonym == row.pseudonym)
        )
    ).scalar_one()
    if respondent.status != "open":
        raise LinkUsed(respondent.status)
    questionnaire = await questionnaire_of(uow, settings, respondent)
    result = validate_answers(questionnaire, answers, partial=True)
    if not result.ok:
        raise InvalidAnswers(result)
    clean = scrub_free_text(questionnaire, result.accepted)
    spent = await spend_link(uow, respondent.token_hash, "submitted")
    if spent is None:
        await _why_not_spent(uow, respondent)
    record_answers(uow, spent, questionnaire, clean, mode="phone", entered_by=principal.subject, language=language)
    await _set_outcome(uow, row, "completed", None)
    await uow.commit()
    return spent


async def _why_not_spent(uow: UnitOfWork, respondent: Respondent) -> None:
    status, expires_at = (
        await uow.session.execute(
            sa.select(Respondent.status, Respondent.expires_at).where(Respondent.token_hash == respondent.token_hash)
        )
    ).one()
    if status != "open":
        raise LinkUsed(status)
    now = datetime.now(UTC)
    state = await uow.session.get(RoundState, respondent.round_id)
    if state is not None:
        ensure_round_open(state.phase, state.fieldwork_ends_at, now)  # raises FieldworkEnded
    raise LinkExpired()


async def refuse(uow: UnitOfWork, interview_id: uuid.UUID, round_id: str, principal: Principal,
                 authorize: Callable[[str], None]) -> None:
    """The citizen declined the interview: off the list for good (their link stays open)."""
    row = await _claim_for_outcome(uow, interview_id, round_id, principal, authorize)
    await _set_outcome(uow, row, "refused", None)
    await uow.commit()


async def call_back(uow: UnitOfWork, interview_id: uuid.UUID, round_id: str, principal: Principal, at: datetime,
                    authorize: Callable[[str], None]) -> None:
    """Call again at ``at`` (checked by domain.interviews.call_back_time): off the list until then."""
    row = await _claim_for_outcome(uow, interview_id, round_id, principal, authorize)
    await _set_outcome(uow, row, "call_back", at)
    await uow.commit()


async def fieldwork_ends_at(uow: UnitOfWork, round_id: str) -> datetime | None:
    return await uow.session.scalar(sa.select(RoundState.fieldwork_ends_at).where(RoundState.round_id == round_id))


async def _set_outcome(uow: UnitOfWork, row: InterviewRow, outcome: str, at: datetime | None) -> None:
    await uow.session.execute(
        sa.update(InterviewRow)
        .where(InterviewRow.id == row.id)
        .values(outcome=outcome, call_back_at=at, calls=InterviewRow.calls + 1, claimed_by=None, claimed_until=None,
                updated_at=datetime.now(UTC))
    )


__all__ = ["Call", "FieldworkEnded", "NotCallable", "UnknownInterview", "complete", "call_back", "next_call", "refuse", "waiting"]
