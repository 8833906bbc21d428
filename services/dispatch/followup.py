"""The adaptive follow-up (domain/followup.py) on dispatch's tables: the operator's rule per round,
the worker that applies it when its step is near, and the operator's report.

**When the rule acts.** ``followup_lead_seconds`` before the round's first message of the rule's
step is due (its stored ``due_at``), so that every step message of the chosen citizens, the
control arm's included, goes out after the assignment and carries the arm (``invitation.sent``'s
``followup_arm``). The observed response rates are the ones of that moment.

**What it does**, in one transaction under the round's exclusive lock (no planning, release or
reschedule meanwhile) and the rule row's lock (one replica applies it, once):

1. counts, per cell (stratum), the invited (a message sent) and, among them, the answered;
2. lists the candidates: active citizens with a contact, not assigned before, whose plan sends
   the step and whose message of it is still to go (``planned``), and who get no message on the
   extra channel at that step already;
3. assigns them (``domain.followup.assign``), sets ``invitation.followup_arm`` and plans one
   extra step (the rule's step, on its channel: ``sms`` or ``paper_all``) per citizen of the extra
   arm, due when the step is; the sender sends it like any other step (window, stop rule, keys);
4. records the counts it saw, the chosen cells and the arms' sizes on the rule row.

The extra steps are at most the budget, so the messages sent are too.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from services.dispatch import paper
from services.dispatch.domain.followup import FOLLOWUP_ARMS, FOLLOWUP_EXTRA, CellCount, FollowupRule, assign
from services.dispatch.domain.lifecycle import InvitationStatus, StepStatus
from services.dispatch.domain.plan import PAPER_CHANNELS, STEPS, RoundPlan
from services.dispatch.domain.schedule import SENDING_PHASES, due_time, fieldwork_over
from services.dispatch.models import DispatchStep, FollowupRuleRow, Invitation, RoundDefinitionRow
from services.dispatch.service import default_plan, get_plans, load_schedule, lock_round
from shared.observability import log_fields
from shared.runtime import ServiceRuntime

logger = logging.getLogger(__name__)

_STEPS = DispatchStep.__table__
_INVITATIONS = Invitation.__table__
# The citizen's step is still to go: its message will carry the arm.
_SENDS_STEP = (StepStatus.PLANNED,)


class RuleRefused(Exception):
    """Why a rule cannot be set (422), with the field it is about."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class RuleApplied(Exception):
    """The round's rule has acted already: it cannot change (409)."""


def _reminders_sent(plans: list[RoundPlan]) -> int:
    counts = [plan.reminder_count for plan in plans]
    counts += [arm.reminder_count for plan in plans for arm in plan.arms.values() if arm.reminder_count is not None]
    return max(counts)


async def set_rule(session: AsyncSession, settings, round_id: str, rule: FollowupRule) -> FollowupRuleRow:
    """Set (or replace, while it has not acted) the round's rule, refusing one that cannot act."""
    plans = list((await get_plans(session, round_id)).values()) or [default_plan(settings)]
    reminders = _reminders_sent(plans)
    if STEPS.index(rule.step) > reminders:
        raise RuleRefused("step", f"the round's plans send {reminders} reminder(s), so no citizen gets {rule.step}")
    if rule.channel == "paper_questionnaire" and not await paper.offered_for_round(session, round_id):
        raise RuleRefused("channel", f"responses has offered no questionnaire for print for round {round_id} yet "
                          "(questionnaire.offered): a paper questionnaire cannot be printed")
    row = (await session.execute(sa.select(FollowupRuleRow).where(FollowupRuleRow.round_id == round_id)
                                 .with_for_update())).scalar_one_or_none()
    if row is not None and row.applied_at is not None:
        raise RuleApplied(f"round {round_id}'s follow-up rule acted at {row.applied_at.isoformat()}: it cannot change")
    gone = await session.scalar(
        sa.select(sa.func.count()).select_from(_STEPS.join(_INVITATIONS, _INVITATIONS.c.id == _STEPS.c.invitation_id))
        .where(_INVITATIONS.c.round_id == round_id, _STEPS.c.step == rule.step,
               _STEPS.c.status.in_([StepStatus.SENDING, StepStatus.SENT]))
    )
    if gone:
        raise RuleRefused("step", f"{rule.step} has gone out to {gone} citizen(s) already: the rule acts before its step")
    if row is None:
        row = FollowupRuleRow(round_id=round_id, rule=rule.model_dump(mode="json"))
        session.add(row)
    else:
        row.rule, row.set_at = rule.model_dump(mode="json"), sa.func.now()
    await session.flush()
    return row


async def get_rule(session: AsyncSession, round_id: str) -> FollowupRuleRow | None:
    return await session.get(FollowupRuleRow, round_id)


_CELL_COUNTS = sa.text(
    f"""
    SELECT i.stratum,
           count(*) AS invited,
           count(*) FILTER (WHERE i.status = '{InvitationStatus.ANSWERED}') AS answered
    FROM {_INVITATIONS.fullname} AS i
    WHERE i.round_id = :round_id
      AND EXISTS (SELECT 1 FROM {_STEPS.fullname} AS s WHERE s.invitation_id = i.id AND s.status = '{StepStatus.SENT}')
    GROUP BY i.stratum
    """
)
_CANDIDATES = sa.text(
    f"""
    SELECT i.stratum, i.pseudonym, i.id, min(s.interval_days)
    FROM {_INVITATIONS.fullname} AS i JOIN {_STEPS.fullname} AS s ON s.invitation_id = i.id
    WHERE i.round_id = :round_id AND i.status = '{InvitationStatus.ACTIVE}' AND i.contact IS NOT NULL
      AND i.followup_arm IS NULL AND s.step = :step AND s.status = ANY(CAST(:sends AS text[]))
      AND NOT EXISTS (SELECT 1 FROM {_STEPS.fullname} AS x WHERE x.invitation_id = i.id AND x.step = :step
                      AND x.channel = ANY(CAST(:taken AS text[])))
    GROUP BY i.stratum, i.pseudonym, i.id
    """
)
_SET_ARMS = sa.text(
    f"""
    UPDATE {_INVITATIONS.fullname} AS i SET followup_arm = a.arm
    FROM unnest(CAST(:id AS uuid[]), CAST(:arm AS text[])) AS a(id, arm) WHERE i.id = a.id
    """
)
_INSERT_EXTRA = sa.text(
    f"""
    INSERT INTO {_STEPS.fullname} (invitation_id, step, channel, due_at, interval_days, status, attempts)
    SELECT e.invitation_id, :step, :channel, e.due_at, e.interval_days, '{StepStatus.PLANNED}', 0
    FROM unnest(CAST(:invitation_id AS uuid[]), CAST(:due_at AS timestamptz[]), CAST(:interval_days AS float8[]))
         AS e(invitation_id, due_at, interval_days)
    ON CONFLICT DO NOTHING
    """
)
_FIRST_DUE = sa.text(
    f"""
    SELECT min(s.due_at) FROM {_STEPS.fullname} AS s JOIN {_INVITATIONS.fullname} AS i ON i.id = s.invitation_id
    WHERE i.round_id = :round_id AND s.step = :step AND s.due_at IS NOT NULL
    """
)


async def apply_rule(session: AsyncSession, round_id: str, now: datetime) -> dict | None:
    """Apply the round's rule now (the module's docstring); None when there is none to apply
    (none set, applied already, or the round is not scheduled or its fieldwork is over)."""
    await lock_round(session, round_id, exclusive=True)
    row = (await session.execute(sa.select(FollowupRuleRow).where(FollowupRuleRow.round_id == round_id)
                                 .with_for_update())).scalar_one_or_none()
    if row is None or row.applied_at is not None:
        return None
    schedule = await load_schedule(session, round_id)
    if schedule is None or not schedule.times_steps or fieldwork_over(schedule, now):
        return None
    rule = FollowupRule.model_validate(row.rule)
    counts = [CellCount(cell, invited, answered)
              for cell, invited, answered in (await session.execute(_CELL_COUNTS, {"round_id": round_id})).all()]
    taken = list(PAPER_CHANNELS) if rule.channel == "paper_questionnaire" else [rule.step_channel]
    rows = (await session.execute(_CANDIDATES, {"round_id": round_id, "step": rule.step, "taken": taken,
                                                "sends": [str(s) for s in _SENDS_STEP]})).all()
    candidates: dict[str, list[str]] = {}
    of_pseudonym = {}
    for stratum, pseudonym, invitation_id, interval_days in rows:
        candidates.setdefault(stratum, []).append(pseudonym)
        of_pseudonym[pseudonym] = (invitation_id, interval_days)
    assignment = assign(rule, round_id, counts, candidates)
    ids = [of_pseudonym[p][0] for p in sorted(assignment.arms)]
    await session.execute(_SET_ARMS, {"id": ids, "arm": [assignment.arms[p] for p in sorted(assignment.arms)]})
    extra = assignment.extra
    if extra:
        params: dict[str, list] = {"invitation_id": [], "due_at": [], "interval_days": []}
        for pseudonym in extra:
            invitation_id, interval_days = of_pseudonym[pseudonym]
            params["invitation_id"].append(invitation_id)
            params["due_at"].append(due_time(schedule, rule.step, rule.step_channel, interval_days))
            params["interval_days"].append(interval_days)
        await session.execute(_INSERT_EXTRA, {**params, "step": rule.step, "channel": rule.step_channel})
    sizes = Counter(assignment.arms.values())
    row.applied_at = now
    row.counts = {c.cell: [c.invited, c.answered] for c in sorted(counts, key=lambda c: c.cell)}
    row.cells = list(assignment.cells)
    row.arms = {arm: sizes.get(arm, 0) for arm in FOLLOWUP_ARMS}
    return {"cells": row.cells, "arms": row.arms}


async def rules_due(session: AsyncSession, now: datetime, lead: timedelta) -> list[str]:
    """Rounds whose rule has not acted and whose step's first message is due within ``lead``
    (only rounds in a sending phase: a rule that never acted before the end of fieldwork never will)."""
    due = []
    pending = (sa.select(FollowupRuleRow.round_id, FollowupRuleRow.rule)
               .join(RoundDefinitionRow, RoundDefinitionRow.round_id == FollowupRuleRow.round_id)
               .where(FollowupRuleRow.applied_at.is_(None), RoundDefinitionRow.phase.in_(SENDING_PHASES)))
    for round_id, rule in (await session.execute(pending)).all():
        first = await session.scalar(_FIRST_DUE, {"round_id": round_id, "step": rule["step"]})
        if first is not None and first - lead <= now:
            due.append(round_id)
    return due


_ARM_REPORT = sa.text(
    f"""
    SELECT i.stratum, i.followup_arm, count(*) AS citizens,
           count(*) FILTER (WHERE i.status = '{InvitationStatus.ANSWERED}') AS answered
    FROM {_INVITATIONS.fullname} AS i
    WHERE i.round_id = :round_id AND i.followup_arm IS NOT NULL
    GROUP BY i.stratum, i.followup_arm ORDER BY i.stratum, i.followup_arm
    """
)
_EXTRA_REPORT = sa.text(
    f"""
    SELECT s.status, count(*) FROM {_STEPS.fullname} AS s JOIN {_INVITATIONS.fullname} AS i ON i.id = s.invitation_id
    WHERE i.round_id = :round_id AND i.followup_arm = '{FOLLOWUP_EXTRA}' AND s.step = :step AND s.channel = :channel
    GROUP BY s.status
    """
)


async def report(session: AsyncSession, round_id: str, row: FollowupRuleRow) -> dict:
    """Per chosen cell and arm the citizens and those who have answered (since: they were all
    unanswered when assigned), and the extra messages per status."""
    rule = FollowupRule.model_validate(row.rule)
    arms = [dict(r._mapping) for r in (await session.execute(_ARM_REPORT, {"round_id": round_id})).all()]
    extra = dict((await session.execute(_EXTRA_REPORT, {"round_id": round_id, "step": rule.step,
                                                        "channel": rule.step_channel})).all())
    return {"arms": arms, "extra_messages": extra}


class FollowupWorker:
    """Applies the rounds' rules when their step is near (``followup_lead_seconds``)."""

    def __init__(self, interval: float, lead_seconds: float, clock) -> None:
        self.interval, self.lead, self.clock = interval, timedelta(seconds=lead_seconds), clock

    async def apply_due(self, runtime: ServiceRuntime) -> list[str]:
        now = self.clock()
        async with runtime.sessionmaker() as session:
            due = await rules_due(session, now, self.lead)
        applied = []
        for round_id in due:
            async with runtime.uow() as uow:
                result = await apply_rule(uow.session, round_id, now)
                await uow.commit()
            if result is not None:
                applied.append(round_id)
                logger.info("adaptive follow-up applied",
                            extra=log_fields(round_id=round_id, cells=len(result["cells"]), **result["arms"]))
        return applied

    async def run(self, runtime: ServiceRuntime) -> None:
        while True:
            try:
                await self.apply_due(runtime)
            except Exception:  # noqa: BLE001 - a failed look is retried at the next one
                logger.exception("adaptive follow-up: a look failed")
            await asyncio.sleep(self.interval)
