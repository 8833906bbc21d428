"""Dispatch's service functions: round plans (admin API), plan resolution, what the status and
failure reports count."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.dispatch.config import DispatchSettings
from services.dispatch.domain.plan import RoundPlan
from services.dispatch.models import NO_CONTACT, ROUND_DEFAULT, WAITING, DispatchStep, Invitation, RoundPlanRow


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
            .where(Invitation.round_id == round_id, DispatchStep.status == "failed")
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

    waiting = sa.func.count().filter(having_a_step(DispatchStep.status == WAITING))
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
