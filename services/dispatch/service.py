"""Dispatch's service functions: round plans, plan resolution, what the status and failure
reports count; the rounds' definitions, rescheduling and the end of fieldwork; the letter
previews. The operator's routes (services.dispatch.api) call those at the end of this module,
which take the unit of work (and commit what they change)."""

from __future__ import annotations

import asyncio
from datetime import date, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.dispatch.config import DispatchSettings
from services.dispatch import paper as paper_step
from services.dispatch.compose import RenderConfig, render_paper_preview, render_preview
from services.dispatch.domain.municipalities import municipalities
from services.dispatch.domain.plan import STEPS, RoundPlan, planned_steps
from services.dispatch.domain.schedule import (
    LOCAL,
    Schedule,
    answer_deadline,
    due_time,
    fieldwork_over,
    round_sending,
    shown_status,
)
from services.dispatch.domain.lifecycle import UNSENT, StepStatus
from services.dispatch.models import (
    NO_CONTACT,
    ROUND_DEFAULT,
    DispatchStep,
    Invitation,
    RoundDefinitionRow,
    RoundPlanRow,
)
from services.dispatch.schemas import (
    ContactCount,
    DispatchStatus,
    FailedStep,
    Failures,
    RoundPlans,
    RoundSchedule,
    StepCount,
)
from shared.bus import UnitOfWork
from shared.db import advisory_key
from shared.events import RoundDefined


def default_plan(settings: DispatchSettings) -> RoundPlan:
    return RoundPlan(
        reminder_count=settings.reminder_count,
        reminder_interval_days=settings.reminder_interval_days,
        reminder_channels=settings.reminder_channels,
    )


async def set_plan(session: AsyncSession, round_id: str, kommunekode: str, plan: RoundPlan) -> None:
    """Applies to samples that arrive afterwards; citizens already planned keep their plan."""
    values = {"round_id": round_id, "kommunekode": kommunekode, "plan": plan.model_dump(mode="json")}
    await session.execute(
        pg_insert(RoundPlanRow)
        .values(**values)
        .on_conflict_do_update(index_elements=["round_id", "kommunekode"], set_={"plan": values["plan"], "updated_at": sa.func.now()})
    )


async def get_plans(session: AsyncSession, round_id: str) -> dict[str, RoundPlan]:
    rows = (await session.execute(sa.select(RoundPlanRow).where(RoundPlanRow.round_id == round_id))).scalars()
    return {row.kommunekode: RoundPlan.model_validate(row.plan) for row in rows}


async def resolve_plan(session: AsyncSession, settings: DispatchSettings, round_id: str, kommunekode: str) -> RoundPlan:
    """The municipality's own plan, else the round's, else the default from settings."""
    rows = (
        await session.execute(
            sa.select(RoundPlanRow.kommunekode, RoundPlanRow.plan).where(
                RoundPlanRow.round_id == round_id, RoundPlanRow.kommunekode.in_([kommunekode, ROUND_DEFAULT])
            )
        )
    ).all()
    plans = dict(rows)
    chosen = plans.get(kommunekode) or plans.get(ROUND_DEFAULT)
    return RoundPlan.model_validate(chosen) if chosen else default_plan(settings)


async def failures(session: AsyncSession, round_id: str, limit: int = 1000) -> list[dict]:
    """Permanently failed steps, for the operator (ids and redacted errors only)."""
    rows = (
        await session.execute(
            sa.select(Invitation.kommunekode, Invitation.pseudonym, DispatchStep.step, DispatchStep.channel,
                      DispatchStep.attempts, DispatchStep.last_error)
            .join(Invitation, Invitation.id == DispatchStep.invitation_id)
            .where(Invitation.round_id == round_id, DispatchStep.status == StepStatus.FAILED)
            .order_by(Invitation.kommunekode, Invitation.pseudonym)
            .limit(limit)
        )
    ).all()
    return [dict(row._mapping) for row in rows]


async def contact_counts(session: AsyncSession, round_id: str) -> list[dict]:
    """Per municipality (only those with any), invitations still waiting for their contact and
    invitations ingest had no contact for (never sent)."""

    def having_a_step(*conditions):
        return sa.exists().where(DispatchStep.invitation_id == Invitation.id, *conditions)

    waiting = sa.func.count().filter(having_a_step(DispatchStep.status == StepStatus.WAITING))
    no_contact = sa.func.count().filter(having_a_step(DispatchStep.skip_reason == NO_CONTACT))
    rows = (
        await session.execute(
            sa.select(Invitation.kommunekode, waiting.label("waiting"), no_contact.label("no_contact"))
            .where(Invitation.round_id == round_id, Invitation.contact.is_(None))
            .group_by(Invitation.kommunekode)
            .order_by(Invitation.kommunekode)
        )
    ).all()
    return [dict(row._mapping) for row in rows if row.waiting or row.no_contact]


# --- the round's definition and schedule ------------------------------------------------------------

_ROUND_LOCK = sa.text("SELECT pg_advisory_xact_lock(:key)")
_ROUND_LOCK_SHARED = sa.text("SELECT pg_advisory_xact_lock_shared(:key)")


def round_lock_key(round_id: str) -> int:
    return advisory_key(f"dispatch.round|{round_id}")


async def lock_round(session: AsyncSession, round_id: str, *, exclusive: bool) -> None:
    """Planning and releases hold the round shared, a new definition exclusively, until the
    transaction ends: a reschedule sees every planned step, and planning reads the definition
    that its due times must follow. Taken before the municipality's lock, in that order."""
    await session.execute(_ROUND_LOCK if exclusive else _ROUND_LOCK_SHARED, {"key": round_lock_key(round_id)})


async def load_definition(session: AsyncSession, round_id: str) -> RoundDefined | None:
    row = await session.get(RoundDefinitionRow, round_id)
    return RoundDefined.model_validate(row.definition) if row is not None else None


async def load_schedule(session: AsyncSession, round_id: str) -> Schedule | None:
    definition = await load_definition(session, round_id)
    return Schedule.from_definition(definition) if definition is not None else None


async def store_definition(session: AsyncSession, event: RoundDefined) -> tuple[Schedule | None, bool]:
    """Keep the definition if its revision is higher than the one kept; returns the schedule
    kept before and whether this one was taken (a lower or equal revision is a replay)."""
    row = (
        await session.execute(sa.select(RoundDefinitionRow).where(RoundDefinitionRow.round_id == event.round_id)
                              .with_for_update())
    ).scalar_one_or_none()
    if row is not None and row.revision >= event.revision:
        return None, False
    before = Schedule.from_definition(RoundDefined.model_validate(row.definition)) if row is not None else None
    values = {"round_id": event.round_id, "revision": event.revision, "phase": event.phase,
              "definition": event.model_dump(mode="json"), "updated_at": sa.func.now()}
    await session.execute(
        pg_insert(RoundDefinitionRow).values(**values)
        .on_conflict_do_update(index_elements=["round_id"], set_={k: v for k, v in values.items() if k != "round_id"})
    )
    return before, True


_UNSENT_SQL = ", ".join(f"'{status}'" for status in UNSENT)

_STEP_GROUPS = sa.text(
    f"""
    SELECT DISTINCT s.step, s.channel, s.interval_days
    FROM {DispatchStep.__table__.fullname} AS s JOIN {Invitation.__table__.fullname} AS i ON i.id = s.invitation_id
    WHERE i.round_id = :round_id AND s.status IN ({_UNSENT_SQL})
    """
)
# Every unsent step of the round gets its group's due time (NULL: the round is not scheduled).
# A step waiting for a retry keeps the later of its backoff and the new time.
_RESCHEDULE = sa.text(
    f"""
    UPDATE {DispatchStep.__table__.fullname} AS s
    SET due_at = CASE WHEN g.due_at IS NULL THEN NULL
                      WHEN s.attempts > 0 THEN GREATEST(g.due_at, s.due_at) ELSE g.due_at END
    FROM {Invitation.__table__.fullname} AS i,
         unnest(CAST(:step AS text[]), CAST(:channel AS text[]), CAST(:interval_days AS float8[]),
                CAST(:due_at AS timestamptz[])) AS g(step, channel, interval_days, due_at)
    WHERE i.id = s.invitation_id AND i.round_id = :round_id AND s.status IN ({_UNSENT_SQL})
      AND s.step = g.step AND s.channel = g.channel AND s.interval_days IS NOT DISTINCT FROM g.interval_days
    """
)


async def reschedule(session: AsyncSession, round_id: str, schedule: Schedule | None) -> int:
    """Give every unsent step of the round the due time ``schedule`` says: one statement, the
    rule evaluated once per (step, channel, interval) group, never per row."""
    groups = (await session.execute(_STEP_GROUPS, {"round_id": round_id})).all()
    if not groups:
        return 0
    params: dict[str, list] = {"step": [], "channel": [], "interval_days": [], "due_at": []}
    for step, channel, interval_days in groups:
        params["step"].append(step)
        params["channel"].append(channel)
        params["interval_days"].append(interval_days)
        params["due_at"].append(due_time(schedule, step, channel, interval_days))
    return (await session.execute(_RESCHEDULE, {**params, "round_id": round_id})).rowcount


async def cancel_unsent(session: AsyncSession, round_id: str) -> int:
    """Fieldwork is over: every step of the round not sent (planned, or waiting for its
    contact) is cancelled; sent, failed and skipped steps keep their status."""
    cancelled = await session.execute(
        sa.update(DispatchStep)
        .where(DispatchStep.invitation_id.in_(sa.select(Invitation.id).where(Invitation.round_id == round_id)),
               DispatchStep.status.in_(UNSENT))
        .values(status=StepStatus.CANCELLED)
        .execution_options(synchronize_session=False)
    )
    await session.execute(
        sa.update(RoundDefinitionRow).where(RoundDefinitionRow.round_id == round_id)
        .values(steps_cancelled_at=sa.func.now())
    )
    return cancelled.rowcount


async def apply_definition(session: AsyncSession, event: RoundDefined, now: datetime) -> bool:
    """round.defined: keep the highest revision, move the round's steps when their due times
    change, cancel what is unsent when fieldwork is over. False for a replayed revision."""
    await lock_round(session, event.round_id, exclusive=True)
    before, taken = await store_definition(session, event)
    if not taken:
        return False
    schedule = Schedule.from_definition(event)
    if fieldwork_over(schedule, now):
        await cancel_unsent(session, event.round_id)
    elif before is None or before.due_basis() != schedule.due_basis():
        await reschedule(session, event.round_id, schedule)
    return True


async def schedules(session: AsyncSession) -> dict[str, tuple[int, dict, datetime | None]]:
    """Every round's (revision, definition, steps_cancelled_at), for the sender."""
    rows = await session.execute(sa.select(RoundDefinitionRow.round_id, RoundDefinitionRow.revision,
                                           RoundDefinitionRow.definition, RoundDefinitionRow.steps_cancelled_at))
    return {round_id: (revision, definition, cancelled) for round_id, revision, definition, cancelled in rows.all()}


async def defer_to_window(session: AsyncSession, round_id: str, until: datetime, now: datetime, channels) -> int:
    """Steps of the round due while its window is closed wait for its next opening, so the claim
    never reads them meanwhile (it reads only the ``(status, due_at)`` range that is due)."""
    result = await session.execute(
        sa.update(DispatchStep)
        .where(DispatchStep.status == StepStatus.PLANNED, DispatchStep.due_at <= now, DispatchStep.channel.in_(list(channels)),
               DispatchStep.invitation_id.in_(sa.select(Invitation.id).where(Invitation.round_id == round_id)))
        .values(due_at=until)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount


async def step_counts(session: AsyncSession, round_id: str) -> list[tuple[str, str, str, str, int]]:
    """(kommunekode, step, channel, status as the operator sees it, count)."""
    rows = (
        await session.execute(
            sa.select(Invitation.kommunekode, DispatchStep.step, DispatchStep.channel, DispatchStep.status,
                      DispatchStep.due_at.is_(None), sa.func.count())
            .join(Invitation, Invitation.id == DispatchStep.invitation_id)
            .where(Invitation.round_id == round_id)
            .group_by(Invitation.kommunekode, DispatchStep.step, DispatchStep.channel, DispatchStep.status,
                      DispatchStep.due_at.is_(None))
        )
    ).all()
    counts: dict[tuple[str, str, str, str], int] = {}
    for kommunekode, step, channel, status, unscheduled, n in rows:
        key = (kommunekode, step, channel, shown_status(status, None if unscheduled else datetime.min))
        counts[key] = counts.get(key, 0) + n
    return [(*key, n) for key, n in sorted(counts.items())]


class PreviewRefused(Exception):
    """Why a letter cannot be previewed (a 404 for the operator)."""


def _previewable(round_id: str, definition: RoundDefined | None, kommunekode: str) -> RoundDefined:
    if definition is None:
        raise PreviewRefused(f"round {round_id} is not defined (no round.defined has reached dispatch)")
    if kommunekode not in municipalities():
        raise PreviewRefused(f"no municipality {kommunekode}")
    if definition.kommuner and kommunekode not in definition.kommuner:
        raise PreviewRefused(f"municipality {kommunekode} does not take part in round {definition.round_id}")
    return definition


def preview_letter(settings: DispatchSettings, round_id: str, definition: RoundDefined | None, plan: RoundPlan,
                   kommunekode: str, step: str, *, paper: bool, today: date,
                   languages: tuple[str, ...] | None = None) -> bytes:
    """The municipality's letter for ``step`` as it will go out (CPU-bound: call off the loop):
    dated the step's due date under the round's schedule (today while it has none), with the
    deadline the real letters print and the round's offered ``languages`` (None: every language)."""
    definition = _previewable(round_id, definition, kommunekode)
    schedule = Schedule.from_definition(definition)
    interval = dict((s, i) for s, _c, i in planned_steps(plan.model_copy(update={"reminder_count": 2})))[step]
    due = due_time(schedule, step, "letter", interval)
    letter_date = due.astimezone(LOCAL).date() if due is not None else today
    deadline = answer_deadline(schedule, settings.response_deadline_days) or letter_date + timedelta(
        days=settings.response_deadline_days)
    return render_preview(RenderConfig.from_settings(settings), kommunekode, step, letter_date, deadline, paper=paper,
                          languages=languages)


def preview_paper_questionnaire(settings: DispatchSettings, round_id: str, definition: RoundDefined | None,
                                plan: RoundPlan, printed: dict | None, kommunekode: str, *, language: str | None,
                                today: date) -> bytes:
    """The municipality's paper questionnaire as it will go out (CPU-bound: call off the loop),
    dated its reminder's due date when the plan sends one, with the letters' deadline."""
    definition = _previewable(round_id, definition, kommunekode)
    if printed is None:
        raise PreviewRefused(f"responses has offered no questionnaire for print for round {round_id} yet "
                             "(questionnaire.offered)")
    schedule = Schedule.from_definition(definition)
    step = plan.paper_questionnaire.step if plan.paper_questionnaire else STEPS[1]
    due = due_time(schedule, step, "letter", plan.reminder_interval_days)
    letter_date = due.astimezone(LOCAL).date() if due is not None else today
    deadline = answer_deadline(schedule, settings.response_deadline_days) or letter_date + timedelta(
        days=settings.response_deadline_days)
    return render_paper_preview(RenderConfig.from_settings(settings), kommunekode, printed, letter_date, deadline, language)


# --- what the operator's routes call: the unit of work in, the answer out ---------------------------

class PlanRefused(Exception):
    """A plan this deployment cannot carry out; the message names the field and why (a 422)."""


async def put_plan(uow: UnitOfWork, settings: DispatchSettings, round_id: str, kommunekode: str, plan: RoundPlan) -> RoundPlans:
    """Set the round's default plan (``kommunekode`` ROUND_DEFAULT) or a municipality's, and
    answer with the round's plans."""
    if plan.phone_interviews and settings.interview_active_key_id not in settings.interview_keyring:
        # Refused here rather than failing every contact release of the round later.
        raise PlanRefused("phone_interviews: interviews by phone need the interview key (INTERVIEW_KEYS and "
                          "INTERVIEW_ACTIVE_KEY_ID), which this deployment has not set")
    await set_plan(uow.session, round_id, kommunekode, plan)
    plans = await get_plans(uow.session, round_id)
    await uow.commit()
    return _round_plans(settings, round_id, plans)


async def round_plans(uow: UnitOfWork, settings: DispatchSettings, round_id: str) -> RoundPlans:
    return _round_plans(settings, round_id, await get_plans(uow.session, round_id))


def _round_plans(settings: DispatchSettings, round_id: str, plans: dict[str, RoundPlan]) -> RoundPlans:
    default = plans.pop(ROUND_DEFAULT, None) or default_plan(settings)
    return RoundPlans(round_id=round_id, default=default, municipalities=plans)


async def dispatch_status(uow: UnitOfWork, round_id: str, now: datetime) -> DispatchStatus:
    """The round's schedule and whether it sends at ``now``; messages per step, channel and
    status; invitations waiting for their contact."""
    definition = await load_definition(uow.session, round_id)
    rows = await step_counts(uow.session, round_id)
    contacts = [ContactCount(**row) for row in await contact_counts(uow.session, round_id)]
    schedule = Schedule.from_definition(definition) if definition is not None else None
    return DispatchStatus(
        round_id=round_id,
        sending=round_sending(schedule, now),
        schedule=RoundSchedule(**definition.model_dump(include=set(RoundSchedule.model_fields))) if definition else None,
        steps=[StepCount(kommunekode=k, step=s, channel=c, status=st, count=n) for k, s, c, st, n in rows],
        invitations_waiting_for_contact=sum(c.waiting for c in contacts), contacts=contacts)


async def failure_report(uow: UnitOfWork, round_id: str) -> Failures:
    return Failures(round_id=round_id, failed=[FailedStep(**row) for row in await failures(uow.session, round_id)])


async def letter_preview(uow: UnitOfWork, settings: DispatchSettings, round_id: str, kommunekode: str, step: str, *,
                         paper: bool, today: date) -> bytes:
    """``preview_letter`` with the round's definition, the municipality's plan and the languages
    responses offers (on ``questionnaire.offered``; every language until it has said) read."""
    printed = paper_step.questionnaire_for(await paper_step.offered_for_round(uow.session, round_id), kommunekode)
    definition, plan = await _preview_basis(uow, settings, round_id, kommunekode)
    languages = tuple((printed or {}).get("offered_languages") or ()) or None
    return await asyncio.to_thread(preview_letter, settings, round_id, definition, plan, kommunekode, step,
                                   paper=paper, today=today, languages=languages)


async def paper_questionnaire_preview(uow: UnitOfWork, settings: DispatchSettings, round_id: str, kommunekode: str, *,
                                      language: str | None, today: date) -> bytes:
    """``preview_paper_questionnaire`` with the round's definition, the municipality's plan and
    the questionnaire responses offered for print read."""
    printed = paper_step.questionnaire_for(await paper_step.offered_for_round(uow.session, round_id), kommunekode)
    definition, plan = await _preview_basis(uow, settings, round_id, kommunekode)
    return await asyncio.to_thread(preview_paper_questionnaire, settings, round_id, definition, plan, printed,
                                   kommunekode, language=language, today=today)


async def _preview_basis(uow: UnitOfWork, settings: DispatchSettings, round_id: str,
                         kommunekode: str) -> tuple[RoundDefined | None, RoundPlan]:
    """The round's definition and the municipality's plan; the transaction ends here (nothing was
    written), so none is held while the PDF renders."""
    definition = await load_definition(uow.session, round_id)
    plan = await resolve_plan(uow.session, settings, round_id, kommunekode)
    await uow.rollback()
    return definition, plan
