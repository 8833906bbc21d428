from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response, status

from services.dispatch import paper, service
from services.dispatch.domain.schedule import Schedule, round_sending
from services.dispatch.models import ROUND_DEFAULT
from services.dispatch.schemas import (
    ContactCount,
    DispatchStatus,
    FailedStep,
    Failures,
    RoundPlan,
    RoundPlans,
    RoundSchedule,
    StepCount,
)
from shared.app import RoundId
from shared.auth import Principal, ensure_kommune_access, require_scopes

router = APIRouter(tags=["dispatch"])
KOMMUNE_PATTERN = r"^\d{3}$"
# Dispatch plans, status and failures span every municipality of a round: KL's operators only.
admin = require_scopes("rounds:admin", "kommuner:all")


@router.put("/rounds/{round_id}/plan", response_model=RoundPlans, summary="Set the round's default dispatch plan")
async def put_round_plan(request: Request, plan: RoundPlan, round_id: RoundId,
                         principal: Principal = Depends(admin)) -> RoundPlans:
    return await _put(request, round_id, ROUND_DEFAULT, plan)


@router.put("/rounds/{round_id}/plan/{kommunekode}", response_model=RoundPlans,
            summary="Set one municipality's dispatch plan in a round (e.g. more SMS for a small one)")
async def put_municipality_plan(request: Request, plan: RoundPlan, round_id: RoundId,
                                kommunekode: str = Path(pattern=KOMMUNE_PATTERN),
                                principal: Principal = Depends(admin)) -> RoundPlans:
    ensure_kommune_access(principal, kommunekode)
    return await _put(request, round_id, kommunekode, plan)


@router.get("/rounds/{round_id}/plan", response_model=RoundPlans, summary="The round's dispatch plans")
async def get_plans(request: Request, round_id: RoundId,
                    principal: Principal = Depends(admin)) -> RoundPlans:
    async with request.app.state.runtime.uow() as uow:
        return _plans(request, round_id, await service.get_plans(uow.session, round_id))


async def _put(request: Request, round_id: str, kommunekode: str, plan: RoundPlan) -> RoundPlans:
    settings = request.app.state.settings
    if plan.phone_interviews and settings.interview_active_key_id not in settings.interview_keyring:
        # Refused here rather than failing every contact release of the round later.
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail="phone_interviews: interviews by phone need the "
                            "interview key (INTERVIEW_KEYS and INTERVIEW_ACTIVE_KEY_ID), which this deployment has not set")
    async with request.app.state.runtime.uow() as uow:
        await service.set_plan(uow.session, round_id, kommunekode, plan)
        plans = await service.get_plans(uow.session, round_id)
        await uow.commit()
    return _plans(request, round_id, plans)


def _plans(request: Request, round_id: str, plans: dict[str, RoundPlan]) -> RoundPlans:
    default = plans.pop(ROUND_DEFAULT, None) or service.default_plan(request.app.state.settings)
    return RoundPlans(round_id=round_id, default=default, municipalities=plans)


@router.get("/rounds/{round_id}/status", response_model=DispatchStatus,
            summary="The round's schedule; messages per step, channel and status; invitations waiting for their contact")
async def round_status(request: Request, round_id: RoundId,
                       principal: Principal = Depends(admin)) -> DispatchStatus:
    async with request.app.state.runtime.uow() as uow:
        definition = await service.load_definition(uow.session, round_id)
        rows = await service.step_counts(uow.session, round_id)
        contacts = [ContactCount(**row) for row in await service.contact_counts(uow.session, round_id)]
    schedule = Schedule.from_definition(definition) if definition is not None else None
    return DispatchStatus(
        round_id=round_id,
        sending=round_sending(schedule, datetime.now(UTC)),
        schedule=RoundSchedule(**definition.model_dump(include=set(RoundSchedule.model_fields))) if definition else None,
        steps=[StepCount(kommunekode=k, step=s, channel=c, status=st, count=n) for k, s, c, st, n in rows],
        invitations_waiting_for_contact=sum(c.waiting for c in contacts), contacts=contacts)


@router.get("/rounds/{round_id}/failures", response_model=Failures, summary="Messages that failed permanently")
async def round_failures(request: Request, round_id: RoundId,
                         principal: Principal = Depends(admin)) -> Failures:
    async with request.app.state.runtime.uow() as uow:
        rows = await service.failures(uow.session, round_id)
    return Failures(round_id=round_id, failed=[FailedStep(**row) for row in rows])


@router.get("/rounds/{round_id}/preview/{kommunekode}/{step}.pdf", response_class=Response,
            summary="Preview a municipality's letter for one step (PDF, a made-up citizen and link)",
            responses={200: {"content": {"application/pdf": {}}}, 404: {"description": "round not defined, or "
                       "municipality unknown or not taking part"}})
async def preview_letter(request: Request, round_id: RoundId,
                         kommunekode: str = Path(pattern=KOMMUNE_PATTERN),
                         step: Literal["invitation", "reminder_1", "reminder_2"] = Path(),
                         printed_letter: bool = Query(False, alias="paper",
                                                      description="the printed letter (citizens exempt from Digital Post)"),
                         principal: Principal = Depends(admin)) -> Response:
    ensure_kommune_access(principal, kommunekode)
    settings = request.app.state.settings
    async with request.app.state.runtime.uow() as uow:
        definition = await service.load_definition(uow.session, round_id)
        plan = await service.resolve_plan(uow.session, settings, round_id, kommunekode)
        printed = paper.questionnaire_for(await paper.offered_for_round(uow.session, round_id), kommunekode)
    try:
        pdf = await asyncio.to_thread(service.preview_letter, settings, round_id, definition, plan, kommunekode, step,
                                      paper=printed_letter, today=datetime.now(UTC).date(),
                                      languages=tuple((printed or {}).get("offered_languages") or ()) or None)
    except service.PreviewRefused as exc:
        raise HTTPException(404, detail=str(exc)) from None
    filename = f"preview-{round_id}-{kommunekode}-{step}.pdf"
    return Response(pdf, media_type="application/pdf",
                    headers={"Content-Disposition": f'inline; filename="{filename}"', "Cache-Control": "no-store"})


@router.get("/rounds/{round_id}/paper-questionnaire/{kommunekode}/preview.pdf", response_class=Response,
            summary="Preview a municipality's paper questionnaire (PDF, a made-up citizen, link and answer id)",
            responses={200: {"content": {"application/pdf": {}}}, 404: {"description": "round not defined, municipality "
                       "unknown or not taking part, or no questionnaire offered for print by responses yet"}})
async def preview_paper_questionnaire(request: Request, round_id: RoundId,
                                      kommunekode: str = Path(pattern=KOMMUNE_PATTERN),
                                      language: str | None = Query(None, pattern=r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})?$",
                                                                   description="the citizen's language; Danish "
                                                                   "where it cannot be printed"),
                                      principal: Principal = Depends(admin)) -> Response:
    ensure_kommune_access(principal, kommunekode)
    settings = request.app.state.settings
    async with request.app.state.runtime.uow() as uow:
        definition = await service.load_definition(uow.session, round_id)
        plan = await service.resolve_plan(uow.session, settings, round_id, kommunekode)
        printed = paper.questionnaire_for(await paper.offered_for_round(uow.session, round_id), kommunekode)
    try:
        pdf = await asyncio.to_thread(service.preview_paper_questionnaire, settings, round_id, definition, plan, printed,
                                      kommunekode, language=language, today=datetime.now(UTC).date())
    except service.PreviewRefused as exc:
        raise HTTPException(404, detail=str(exc)) from None
    filename = f"preview-{round_id}-{kommunekode}-paper-questionnaire.pdf"
    return Response(pdf, media_type="application/pdf",
                    headers={"Content-Disposition": f'inline; filename="{filename}"', "Cache-Control": "no-store"})
