"""The round: its definition and phase, kept by ingest and published as round.defined.

Ingest owns the round because it already holds both of its ends: a round begins with its
deliveries and ends with ``POST /rounds/{id}/close``, the retention clock and the purge
(docs/rounds.md). The rules are in ``services.ingest.domain.rounds``; this module applies them to
the stored definition and, in the same transaction, publishes the whole definition with its
revision raised (round.defined: consumers keep the highest revision). Every change is in ingest's
audit log.

Transitions come from four places: the operator's actions (api), a delivery (the first one),
sample.drawn (the draw) and the phase clock (a date passing; ``run_phase_clock``, which also
publishes definitions written without an event, e.g. by the migration that defined the rounds
that existed before rounds were defined).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import asdict, replace
from datetime import UTC, datetime

import sqlalchemy as sa

from services.ingest.config import IngestSettings
from services.ingest.domain import rounds as rules
from services.ingest.domain.classification import load_mapping
from services.ingest.models import AUDIT, RoundDefinition
from services.ingest.schemas import RoundCreate, RoundFields, RoundSchedule, RoundView, SendingWindowIn, SendingWindowOut
from shared.audit import record
from shared.bus import UnitOfWork
from shared.events import RoundDefined
from shared.observability import log_fields

logger = logging.getLogger(__name__)

AUDIT_KIND = "round"


class RoundUnknown(LookupError):
    def __init__(self, round_id: str) -> None:
        super().__init__(
            f"round {round_id} is not defined: KL's operator creates it with POST /rounds before anything is delivered for it"
        )
        self.round_id = round_id


class RoundExists(Exception):
    pass


def plan_of(row: RoundDefinition) -> rules.RoundPlan:
    """The stored definition as the rules see it; ``_apply`` writes a plan back."""
    return rules.RoundPlan(
        round_id=row.round_id,
        name=row.name,
        reference_date=row.reference_date,
        maalgruppe_mapping_version=row.maalgruppe_mapping_version,
        retention_days=row.retention_days,
        phase=row.phase,  # type: ignore[arg-type]
        questionnaire_version=row.questionnaire_version,
        kommuner=tuple(row.kommuner or ()),
        delivery_deadline=row.delivery_deadline,
        invitation_at=row.invitation_at,
        reminders_at=tuple(row.reminders_at or ()),
        fieldwork_ends_at=row.fieldwork_ends_at,
        sending_window=rules.SendingWindow(row.sending_window_start, row.sending_window_end),
        languages=tuple(row.languages or ()),
        translation_status=row.translation_status or "draft",
    )


def _apply(row: RoundDefinition, plan: rules.RoundPlan) -> None:
    """Write the plan's definition (every field an operator sets) into the row."""
    for name in rules.EDITABLE_FIELDS:
        value = getattr(plan, name)
        if name == "sending_window":
            row.sending_window_start, row.sending_window_end = value.start, value.end
        else:
            setattr(row, name, list(value) if isinstance(value, tuple) else value)


def event_of(row: RoundDefinition) -> RoundDefined:
    """The whole definition as round.defined publishes it: the plan, its revision and phase time."""
    return RoundDefined(
        **asdict(plan_of(row)), revision=row.revision, phase_changed_at=row.phase_changed_at, implicit=row.implicit
    )


def next_actions(plan: rules.RoundPlan) -> list[str]:
    """What the round waits for, in words (the operator's to-do)."""
    match plan.phase:
        case "planned":
            return ["deliveries: the first accepted delivery starts collecting extracts"]
        case "collecting_extracts":
            deadline = f" (deadline {plan.delivery_deadline:%Y-%m-%d %H:%M} UTC)" if plan.delivery_deadline else ""
            return [f"deliveries from every participating municipality{deadline}, then the draw at sampling"]
        case "sample_drawn":
            return ["POST /rounds/{id}/schedule: confirm the send dates (invitation_at now or later, fieldwork_ends_at)"]
        case "fieldwork_scheduled":
            return [f"the invitation at {plan.invitation_at:%Y-%m-%d %H:%M} UTC" if plan.invitation_at else "an invitation_at"]
        case "in_fieldwork":
            return [f"the end of fieldwork at {plan.fieldwork_ends_at:%Y-%m-%d %H:%M} UTC" if plan.fieldwork_ends_at else "an end"]
        case "fieldwork_ended":
            return ["POST /rounds/{id}/close: start the retention clock"]
        case "closed":
            return ["the purge when the retention period has run out, and every service's receipt"]
    return []


def view_of(row: RoundDefinition) -> RoundView:
    """The operator's view: the definition as published, who made it, and what the round waits for."""
    event = event_of(row)
    return RoundView(
        **event.model_dump(exclude={"sending_window"}),
        sending_window=SendingWindowOut(start=event.sending_window.start.isoformat(), end=event.sending_window.end.isoformat()),
        created_by=row.created_by,
        created_at=row.created_at,
        updated_by=row.updated_by,
        updated_at=row.updated_at,
        next_actions=[a.replace("{id}", row.round_id) for a in next_actions(plan_of(row))],
    )


async def load(session, round_id: str, *, lock: bool = False) -> RoundDefinition | None:
    return await session.get(RoundDefinition, round_id, with_for_update=lock, populate_existing=lock)


async def require(session, round_id: str, *, lock: bool = False) -> RoundDefinition:
    row = await load(session, round_id, lock=lock)
    if row is None:
        raise RoundUnknown(round_id)
    return row


def _check_mapping(version: str) -> None:
    try:
        load_mapping(version)
    except LookupError as exc:
        raise rules.RoundRuleError([f"maalgruppe_mapping_version: {exc}"]) from None


def _changes(fields: RoundFields) -> dict:
    """The fields given in a request, as the rules name and type them."""
    changes = fields.model_dump(exclude_unset=True)
    out: dict = {}
    for name, value in changes.items():
        if name in ("kommuner", "languages"):
            out[name] = tuple(value or ())
        elif name == "reminders_at":
            out[name] = tuple(_utc(v) for v in value or ())
        elif name == "sending_window":
            window = getattr(fields, name) or SendingWindowIn()
            out[name] = rules.SendingWindow(window.start, window.end)
        elif name in ("delivery_deadline", "invitation_at", "fieldwork_ends_at"):
            out[name] = _utc(value) if value is not None else None
        elif value is None and name in ("name", "reference_date", "maalgruppe_mapping_version", "retention_days",
                                        "translation_status"):
            raise rules.RoundRuleError([f"{name}: cannot be removed"])
        else:
            out[name] = value
    return out


def _utc(moment: datetime) -> datetime:
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise rules.RoundRuleError([f"{moment.isoformat()}: not a time a round can have"]) from None


async def _save(uow: UnitOfWork, row: RoundDefinition, plan: rules.RoundPlan, *, actor: str, action: str, now: datetime) -> None:
    """The plan stored as the round's next revision, published in the same transaction, audited."""
    before = row.phase
    _apply(row, plan)
    if plan.phase != before:
        row.phase = plan.phase
        row.phase_changed_at = now
    row.revision += 1
    row.published_revision = row.revision
    row.updated_by = actor
    row.updated_at = now
    uow.publish(event_of(row))
    await record(
        uow.session,
        AUDIT,
        actor=actor,
        action=f"round.{action}",
        kind=AUDIT_KIND,
        resource={"round_id": row.round_id, "revision": row.revision, "phase": row.phase, "from_phase": before},
    )
    if plan.phase != before:
        logger.info(
            "round phase changed",
            extra=log_fields(round_id=row.round_id, phase=plan.phase, from_phase=before, action=action, revision=row.revision),
        )


async def _transition(uow: UnitOfWork, row: RoundDefinition, action: rules.Action, *, actor: str, now: datetime) -> None:
    """Take ``action`` on the stored round (``rules.transition`` decides), saved as ``_save`` does."""
    await _save(uow, row, rules.transition(plan_of(row), action, now), actor=actor, action=action, now=now)


async def _committed(uow: UnitOfWork, row: RoundDefinition) -> RoundView:
    """Commit the operator's change; the round as it now stands."""
    view = view_of(row)
    await uow.commit()
    return view


# --- the operator's calls --------------------------------------------------------------------------


async def create_round(uow: UnitOfWork, settings: IngestSettings, body: RoundCreate, actor: str) -> RoundView:
    now = datetime.now(UTC)
    changes = _changes(body)
    changes.pop("round_id")
    plan = rules.RoundPlan(
        round_id=body.round_id,
        name=body.name,
        reference_date=body.reference_date,
        maalgruppe_mapping_version=settings.maalgruppe_mapping_version,
        retention_days=max(1, settings.retention_days),
    )
    plan = rules.edit(plan, changes, now)
    _check_mapping(plan.maalgruppe_mapping_version)
    row = RoundDefinition(
        round_id=plan.round_id,
        revision=0,
        published_revision=0,
        phase=plan.phase,
        phase_changed_at=now,
        implicit=False,
        created_by=actor,
        created_at=now,
        updated_by=actor,
        updated_at=now,
    )
    _apply(row, plan)
    if await load(uow.session, body.round_id) is not None:
        raise RoundExists(body.round_id)
    uow.session.add(row)
    try:
        await uow.session.flush()
    except sa.exc.IntegrityError:  # created at the same moment by another call
        raise RoundExists(body.round_id) from None
    await _save(uow, row, plan, actor=actor, action="created", now=now)
    return await _committed(uow, row)


async def list_rounds(uow: UnitOfWork) -> list[RoundView]:
    rows = await uow.session.scalars(sa.select(RoundDefinition).order_by(RoundDefinition.created_at.desc(), RoundDefinition.round_id))
    return [view_of(row) for row in rows]


async def get_round(uow: UnitOfWork, round_id: str) -> RoundView:
    return view_of(await require(uow.session, round_id))


async def edit_round(uow: UnitOfWork, round_id: str, body: RoundFields, actor: str) -> RoundView:
    now = datetime.now(UTC)
    row = await require(uow.session, round_id, lock=True)
    changes = _changes(body)
    plan = rules.edit(plan_of(row), changes, now)
    if "maalgruppe_mapping_version" in changes:
        _check_mapping(plan.maalgruppe_mapping_version)
    if plan != plan_of(row):
        await _save(uow, row, plan, actor=actor, action="edited", now=now)
    return await _committed(uow, row)


async def schedule_round(uow: UnitOfWork, round_id: str, body: RoundSchedule, actor: str) -> RoundView:
    """Confirm the send dates (fieldwork_scheduled); dates in the body replace the round's first."""
    now = datetime.now(UTC)
    row = await require(uow.session, round_id, lock=True)
    plan = plan_of(row)
    changes = _changes(body)  # type: ignore[arg-type]
    if changes:
        # The dates are checked as one: with the new invitation, a reminder may be too early.
        plan = replace(plan, **changes)
    plan = rules.transition(plan, "schedule", now)
    await _save(uow, row, plan, actor=actor, action="scheduled", now=now)
    return await _committed(uow, row)


async def take_action(uow: UnitOfWork, round_id: str, action: rules.Action, actor: str, *, now: datetime | None = None) -> RoundView:
    """An operator's transition (end-fieldwork)."""
    now = now or datetime.now(UTC)
    row = await require(uow.session, round_id, lock=True)
    await _transition(uow, row, action, actor=actor, now=now)
    return await _committed(uow, row)


# --- transitions inside other work (no commit: the caller's transaction) ----------------------------


async def advance(uow: UnitOfWork, round_id: str, action: rules.Action, *, actor: str, now: datetime | None = None) -> bool:
    """Take ``action`` if the round is in a phase it starts from; otherwise nothing (a replayed
    event, a second delivery). True when the phase moved."""
    row = await load(uow.session, round_id, lock=True)
    if row is None or row.phase not in rules.TRANSITIONS[action][0]:
        return False
    await _transition(uow, row, action, actor=actor, now=now or datetime.now(UTC))
    return True


async def close(uow: UnitOfWork, round_id: str, *, actor: str, now: datetime) -> RoundDefinition:
    """The close's transition (privacy.service.close_round holds the transaction): ends fieldwork
    if it runs."""
    row = await require(uow.session, round_id, lock=True)
    await _transition(uow, row, "close", actor=actor, now=now)
    return row


async def delivery_refusal(session, round_id: str, kommunekode: str, *, lock: bool = False) -> tuple[RoundDefinition, str | None]:
    """The round (RoundUnknown when it is not defined) and why it refuses a delivery, if it does."""
    row = await require(session, round_id, lock=lock)
    return row, rules.delivery_refusal(plan_of(row), kommunekode)


# --- the phase clock (a worker in ingest's lifespan) -------------------------------------------------


async def publish_unpublished(uow: UnitOfWork) -> int:
    """Publish every definition whose revision has no event yet (the migration's), once."""
    rows = list(
        await uow.session.scalars(
            sa.select(RoundDefinition)
            .where(RoundDefinition.published_revision < RoundDefinition.revision)
            .with_for_update(skip_locked=True)
            .limit(500)
        )
    )
    for row in rows:
        row.published_revision = row.revision
        uow.publish(event_of(row))
    await uow.commit()
    return len(rows)


async def due_rounds(session, now: datetime) -> list[str]:
    """Rounds a passing date moves: scheduled or in fieldwork, with a date at or before now."""
    return list(
        await session.scalars(
            sa.select(RoundDefinition.round_id).where(
                RoundDefinition.phase.in_(rules.SENDING_PHASES),
                sa.or_(RoundDefinition.invitation_at <= now, RoundDefinition.fieldwork_ends_at <= now),
            )
        )
    )


async def advance_by_date(uow: UnitOfWork, round_id: str, now: datetime) -> rules.Action | None:
    row = await load(uow.session, round_id, lock=True)
    if row is None:
        return None
    action = rules.due_action(plan_of(row), now)
    if action is None:
        return None
    await _transition(uow, row, action, actor="ingest:phase-clock", now=now)
    await uow.commit()
    return action


async def run_phase_clock(runtime) -> None:
    settings: IngestSettings = runtime.settings
    while True:
        async with runtime.uow() as uow:
            while await publish_unpublished(uow):
                pass
        now = datetime.now(UTC)
        async with runtime.uow() as uow:
            due = await due_rounds(uow.session, now)
        for round_id in due:
            # One transition per step: scheduled -> in_fieldwork, then -> fieldwork_ended if due too.
            async with runtime.uow() as uow:
                while await advance_by_date(uow, round_id, now):
                    pass
        await asyncio.sleep(settings.round_clock_interval_seconds)
