"""The operator's adaptive follow-up rule per round (followup.py): set it, read it and what it did."""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, Request, status

from services.dispatch import followup
from services.dispatch.domain.followup import FollowupRule
from services.dispatch.models import FollowupRuleRow
from services.dispatch.schemas import FollowupArmCount, FollowupCell, FollowupState
from shared.app import RoundId
from shared.auth import Principal, require_scopes

router = APIRouter(tags=["dispatch"])
# Scoped as the round's dispatch plans: the rule spans every municipality of the round.
admin = require_scopes("rounds:admin", "kommuner:all")


@router.put("/rounds/{round_id}/followup", response_model=FollowupState,
            summary="Set the round's adaptive follow-up rule (an extra reminder for the cells answering least)",
            responses={409: {"description": "the rule has acted already"},
                       422: {"description": "the rule is invalid, or cannot act in this round (the field is named)"}})
async def put_followup(request: Request, rule: FollowupRule, round_id: RoundId,
                       principal: Principal = Depends(admin)) -> FollowupState:
    async with request.app.state.runtime.uow() as uow:
        try:
            row = await followup.set_rule(uow.session, request.app.state.settings, round_id, rule)
        except followup.RuleRefused as exc:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=str(exc)) from None
        except followup.RuleApplied as exc:
            raise HTTPException(status.HTTP_409_CONFLICT, detail=str(exc)) from None
        await uow.commit()
        await uow.session.refresh(row)
        return await _state(uow.session, row)


@router.get("/rounds/{round_id}/followup", response_model=FollowupState,
            summary="The round's adaptive follow-up rule, and once it has acted its cells, arms and extra messages",
            responses={404: {"description": "the round has no follow-up rule"}})
async def get_followup(request: Request, round_id: RoundId, principal: Principal = Depends(admin)) -> FollowupState:
    async with request.app.state.runtime.uow() as uow:
        row = await followup.get_rule(uow.session, round_id)
        if row is None:
            raise HTTPException(404, detail=f"round {round_id} has no adaptive follow-up rule")
        return await _state(uow.session, row)


async def _state(session, row: FollowupRuleRow) -> FollowupState:
    state = FollowupState(round_id=row.round_id, rule=FollowupRule.model_validate(row.rule), set_at=row.set_at,
                          applied_at=row.applied_at)
    if row.applied_at is None:
        return state
    chosen = list(row.cells or [])
    rest = sorted(set(row.counts or {}) - set(chosen))
    state.cells = [FollowupCell(stratum=c, invited=row.counts[c][0], answered=row.counts[c][1], chosen=c in chosen)
                   for c in chosen + rest]
    state.arms = dict(row.arms or {})
    done = await followup.report(session, row.round_id, row)
    state.by_cell = [FollowupArmCount(stratum=r["stratum"], arm=r["followup_arm"], citizens=r["citizens"],
                                      answered=r["answered"]) for r in done["arms"]]
    state.extra_messages = done["extra_messages"]
    return state
