"""Responses' service functions: open a link, keep a draft, spend the link atomically with the
answers (web or paper), opt out."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from services.responses.config import ResponsesSettings
from services.responses.domain import Questionnaire, ValidationResult, scrub_free_text, validate_answers
from services.responses.domain.rounds import closed_sql, fieldwork_over
from services.responses.models import Respondent, Response, RoundState
from services.responses.questionnaires import questionnaire_for_key, questionnaire_for_round
from shared import links
from shared.bus import UnitOfWork
from shared.events import Bands, ResponseOptedOut, ResponseSubmitted


class UnknownLink(Exception):
    pass


def link_pending(settings: ResponsesSettings, token: str, now: datetime | None = None) -> bool:
    """A token this service does not know, which dispatch issued (shared/links.py) within
    ``link_pending_hours``: its letter reached the citizen before link.issued reached this
    service. Anything else not known (a guess, a typo, a purged or long-lost link) is unknown. No
    lookup: a guess costs one HMAC and learns nothing (its answer is the unknown link's)."""
    key = settings.link_key_bytes
    if key is None or not token:
        return False
    issued = links.issued_at(key, token)
    if issued is None:
        return False
    now = now or datetime.now(UTC)
    # A minute's grace before the issue time: the issuer's clock may be ahead of ours.
    return issued - timedelta(minutes=1) <= now <= issued + timedelta(hours=settings.link_pending_hours)


class LinkUsed(Exception):
    """The link was spent; ``args[0]`` is the respondent's status (submitted / opted_out)."""

    @property
    def status(self) -> str:
        return self.args[0] if self.args else "submitted"


class LinkExpired(Exception):
    pass


class FieldworkEnded(LinkExpired):
    """The link's round has ended its fieldwork (domain/rounds.py): nothing more is taken in;
    a saved draft stays. ``ended_at``: the round's end date when it has one."""

    def __init__(self, ended_at: datetime | None = None) -> None:
        super().__init__("fieldwork has ended")
        self.ended_at = ended_at


class InvalidAnswers(Exception):
    def __init__(self, result: ValidationResult) -> None:
        super().__init__("invalid answers")
        self.result = result


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class LinkHash(str):
    """A link named by its stored hash rather than its token, for a caller that found it by
    another key (the paper entry, by the answer id): every function here that takes a token
    takes this too."""


def link_hash(token: str) -> str:
    return str(token) if isinstance(token, LinkHash) else hash_token(token)


async def find_link(uow: UnitOfWork, token: str) -> Respondent:
    respondent = await uow.session.get(Respondent, link_hash(token))
    if respondent is None:
        raise UnknownLink()
    # Detached, so it stays readable after the unit of work ends (a rollback on leaving would
    # otherwise expire it); all writes go through explicit UPDATE statements anyway.
    uow.session.expunge(respondent)
    return respondent


async def open_link(uow: UnitOfWork, token: str, authorize: Callable[[Respondent], None] | None = None) -> Respondent:
    respondent = await find_link(uow, token)
    if authorize is not None:
        authorize(respondent)  # before any state is revealed
    if respondent.status != "open":
        raise LinkUsed(respondent.status)
    now = datetime.now(UTC)
    round_state = await uow.session.get(RoundState, respondent.round_id)
    if round_state is not None:
        uow.session.expunge(round_state)
        ensure_round_open(round_state.phase, round_state.fieldwork_ends_at, now)
    if respondent.expires_at <= now:
        raise LinkExpired()
    return respondent


def ensure_round_open(phase: str | None, fieldwork_ends_at: datetime | None, now: datetime) -> None:
    if fieldwork_over(phase, fieldwork_ends_at, now):
        raise FieldworkEnded(fieldwork_ends_at if fieldwork_ends_at is not None and fieldwork_ends_at <= now else None)


# The same rule inside the spending UPDATE, so an answer racing the end is decided atomically.
ROUND_OPEN = sa.text(
    f"NOT EXISTS (SELECT 1 FROM {RoundState.__table__.fullname} AS s "
    f"WHERE s.round_id = {Respondent.__table__.fullname}.round_id AND {closed_sql('s', ':now')})"
)


async def questionnaire_of(uow: UnitOfWork, settings: ResponsesSettings, respondent: Respondent) -> Questionnaire:
    """The questionnaire this citizen was given, fixing it on first use (not committed here).

    The conditional UPDATE makes two tabs opening the link at once agree on one version."""
    if respondent.questionnaire_key is None:
        offered = await questionnaire_for_round(uow.session, settings, respondent.round_id, respondent.kommunekode)
        fixed = (
            await uow.session.execute(
                sa.update(Respondent)
                .where(Respondent.token_hash == respondent.token_hash, Respondent.questionnaire_key.is_(None))
                .values(questionnaire_key=offered.version_key, opened_at=datetime.now(UTC))
                .returning(Respondent.questionnaire_key)
                # The loaded row stays usable after the session closes (set by hand below).
                .execution_options(synchronize_session=False)
            )
        ).scalar_one_or_none()
        if fixed is None:  # the other tab won: use what it fixed
            fixed = (
                await uow.session.execute(
                    sa.select(Respondent.questionnaire_key).where(Respondent.token_hash == respondent.token_hash)
                )
            ).scalar_one()
        respondent.questionnaire_key = fixed
    return await questionnaire_for_key(uow.session, respondent.questionnaire_key)


async def open_survey(uow: UnitOfWork, settings: ResponsesSettings, token: str) -> tuple[Respondent, Questionnaire]:
    """An open link and its questionnaire; commits when this is the first opening."""
    respondent = await open_link(uow, token)
    first_time = respondent.questionnaire_key is None
    questionnaire = await questionnaire_of(uow, settings, respondent)
    if first_time:
        await uow.commit()
    return respondent, questionnaire


def merge_page(draft: Mapping[str, object], shown: list[str], posted: Mapping[str, str]) -> dict[str, object]:
    """The draft with one page's answers applied: a question that was on the page but has no
    value now was cleared (radio groups post nothing when nothing is chosen)."""
    merged = dict(draft)
    for question_id in shown:
        value = posted.get(question_id)
        if value is None or value == "":
            merged.pop(question_id, None)
        else:
            merged[question_id] = value
    return merged


async def save_draft(
    uow: UnitOfWork,
    settings: ResponsesSettings,
    token: str,
    answers: Mapping[str, object],
    page: int,
    respondent: Respondent | None = None,
) -> ValidationResult:
    """Save partial answers (save-and-resume). Invalid answers are not saved: the result's
    errors go back to the citizen with what they typed. ``respondent``: already opened in this
    unit of work (the UPDATE re-checks that the link is open)."""
    respondent = respondent or await open_link(uow, token)
    questionnaire = await questionnaire_of(uow, settings, respondent)
    result = validate_answers(questionnaire, answers, partial=True)
    if not result.ok:
        return result
    # Scrubbed before storing too: a draft is kept for weeks, and personal data must never be.
    await uow.session.execute(
        sa.update(Respondent)
        .where(Respondent.token_hash == respondent.token_hash, Respondent.status == "open")
        .values(draft=scrub_free_text(questionnaire, result.accepted), last_page=sa.func.greatest(Respondent.last_page, page))
    )
    await uow.commit()
    return result


async def _spend(uow: UnitOfWork, token: str, new_status: str) -> Respondent:
    """Spend the link: the conditional UPDATE is the one place that decides, so a double click
    or a second tab cannot submit twice."""
    spent = await spend_link(uow, link_hash(token), new_status)
    if spent is None:
        uow.session.expunge_all()
        await open_link(uow, token)  # raises the precise reason
        raise LinkUsed("submitted")  # raced with another submit
    return spent


async def spend_link(uow: UnitOfWork, token_hash: str, new_status: str) -> Respondent | None:
    """The spend itself, by the link's hash (an interview knows no token): the respondent, or
    None when the link was not open (spent, expired, its round's fieldwork over)."""
    now = datetime.now(UTC)
    return (
        await uow.session.execute(
            sa.update(Respondent)
            .where(Respondent.token_hash == token_hash, Respondent.status == "open", Respondent.expires_at > now,
                   ROUND_OPEN.bindparams(now=now))
            .values(status=new_status, finished_at=now, draft={})
            .returning(Respondent)
            .execution_options(populate_existing=True)
        )
    ).scalar_one_or_none()


async def submit(
    uow: UnitOfWork,
    settings: ResponsesSettings,
    token: str,
    answers: Mapping[str, object],
    *,
    mode: str = "web",
    entered_by: str | None = None,
    authorize: Callable[[Respondent], None] | None = None,
    respondent: Respondent | None = None,
    language: str = "da",
) -> Respondent:
    """Validate against the citizen's questionnaire, spend the link, store and publish the answers.

    ``language``: the language the answers were given in, stored and published with them.

    Nothing is mandatory (a citizen may skip any question: forcing answers costs answers and
    honesty); only what is given must be valid. Ints are accepted as scale scores and stored as
    the option codes ("meget_enig"), so analytics gets one canonical form.
    """
    # An already opened respondent saves a query; _spend re-checks the state atomically anyway.
    respondent = respondent or await open_link(uow, token, authorize)
    questionnaire = await questionnaire_of(uow, settings, respondent)
    result = validate_answers(questionnaire, answers, partial=True)
    if not result.ok:
        raise InvalidAnswers(result)
    clean = scrub_free_text(questionnaire, result.accepted)
    respondent = await _spend(uow, token, "submitted")
    record_answers(uow, respondent, questionnaire, clean, mode=mode, entered_by=entered_by, language=language)
    await uow.commit()
    return respondent


def record_answers(
    uow: UnitOfWork,
    respondent: Respondent,
    questionnaire: Questionnaire,
    clean: Mapping[str, object],
    *,
    mode: str,
    entered_by: str | None,
    language: str,
) -> None:
    """The answer row and response.submitted of a link just spent (in the same unit of work)."""
    now = datetime.now(UTC)
    uow.session.add(
        Response(
            token_hash=respondent.token_hash,
            questionnaire_id=questionnaire.id,
            questionnaire_version=questionnaire.version,
            questionnaire_key=questionnaire.version_key,
            mode=mode,
            language=language,
            entered_by=entered_by,
            answers=clean,
            submitted_at=now,
        )
    )
    uow.publish(
        ResponseSubmitted(
            round_id=respondent.round_id,
            kommunekode=respondent.kommunekode,
            pseudonym=respondent.pseudonym,
            questionnaire_id=questionnaire.id,
            questionnaire_version=questionnaire.version,
            mode=mode,
            maalgruppe=respondent.maalgruppe,
            stratum=respondent.stratum,
            bands=Bands(gender=respondent.gender, age_band=respondent.age_band, duration_band=respondent.duration_band),
            design_weight=respondent.design_weight,
            arm=respondent.arm,
            answers=clean,
            submitted_at=now,
            language=language,
        )
    )


async def opt_out(uow: UnitOfWork, token: str) -> Respondent:
    respondent = await _spend(uow, token, "opted_out")
    uow.publish(
        ResponseOptedOut(
            round_id=respondent.round_id,
            kommunekode=respondent.kommunekode,
            pseudonym=respondent.pseudonym,
            stratum=respondent.stratum,
            opted_out_at=datetime.now(UTC),
        )
    )
    await uow.commit()
    return respondent
