"""Dispatch's HTTP API for KL's operator (``Operator``): thin routers over service functions.
The round's dispatch plans (its default and a municipality's own), what has been sent and what
failed, and previews of a municipality's letters and paper questionnaire as PDFs. The service
functions' refusals answer as ``services.dispatch.errors`` says."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from fastapi import APIRouter, Path, Query, Response

from services.dispatch import service
from services.dispatch.deps import Kommunekode, Operator, RoundId, Settings, Uow
from services.dispatch.models import ROUND_DEFAULT
from services.dispatch.schemas import DispatchStatus, Failures, RoundPlan, RoundPlans
from shared.auth import ensure_kommune_access

router = APIRouter(tags=["dispatch"])


@router.put("/rounds/{round_id}/plan", response_model=RoundPlans, summary="Set the round's default dispatch plan")
async def put_round_plan(uow: Uow, settings: Settings, plan: RoundPlan, round_id: RoundId, principal: Operator) -> RoundPlans:
    return await service.put_plan(uow, settings, round_id, ROUND_DEFAULT, plan)


@router.put("/rounds/{round_id}/plan/{kommunekode}", response_model=RoundPlans,
            summary="Set one municipality's dispatch plan in a round (e.g. more SMS for a small one)")
async def put_municipality_plan(uow: Uow, settings: Settings, plan: RoundPlan, round_id: RoundId, kommunekode: Kommunekode,
                                principal: Operator) -> RoundPlans:
    ensure_kommune_access(principal, kommunekode)
    return await service.put_plan(uow, settings, round_id, kommunekode, plan)


@router.get("/rounds/{round_id}/plan", response_model=RoundPlans, summary="The round's dispatch plans")
async def get_plans(uow: Uow, settings: Settings, round_id: RoundId, principal: Operator) -> RoundPlans:
    return await service.round_plans(uow, settings, round_id)


@router.get("/rounds/{round_id}/status", response_model=DispatchStatus,
            summary="The round's schedule; messages per step, channel and status; invitations waiting for their contact")
async def round_status(uow: Uow, round_id: RoundId, principal: Operator) -> DispatchStatus:
    return await service.dispatch_status(uow, round_id, datetime.now(UTC))


@router.get("/rounds/{round_id}/failures", response_model=Failures, summary="Messages that failed permanently")
async def round_failures(uow: Uow, round_id: RoundId, principal: Operator) -> Failures:
    return await service.failure_report(uow, round_id)


@router.get("/rounds/{round_id}/preview/{kommunekode}/{step}.pdf", response_class=Response,
            summary="Preview a municipality's letter for one step (PDF, a made-up citizen and link)",
            responses={200: {"content": {"application/pdf": {}}}, 404: {"description": "round not defined, or "
                       "municipality unknown or not taking part"}})
async def preview_letter(uow: Uow, settings: Settings, round_id: RoundId, kommunekode: Kommunekode, principal: Operator,
                         step: Literal["invitation", "reminder_1", "reminder_2"] = Path(),
                         paper: bool = Query(False, description="the printed letter (citizens exempt from Digital Post)"),
                         ) -> Response:
    ensure_kommune_access(principal, kommunekode)
    pdf = await service.letter_preview(uow, settings, round_id, kommunekode, step, paper=paper, today=datetime.now(UTC).date())
    return _pdf(pdf, f"preview-{round_id}-{kommunekode}-{step}.pdf")


@router.get("/rounds/{round_id}/paper-questionnaire/{kommunekode}/preview.pdf", response_class=Response,
            summary="Preview a municipality's paper questionnaire (PDF, a made-up citizen, link and answer id)",
            responses={200: {"content": {"application/pdf": {}}}, 404: {"description": "round not defined, municipality "
                       "unknown or not taking part, or no questionnaire offered for print by responses yet"}})
async def preview_paper_questionnaire(uow: Uow, settings: Settings, round_id: RoundId, kommunekode: Kommunekode,
                                      principal: Operator,
                                      language: str | None = Query(None, pattern=r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})?$",
                                                                   description="the citizen's language; Danish "
                                                                   "where it cannot be printed"),
                                      ) -> Response:
    ensure_kommune_access(principal, kommunekode)
    pdf = await service.paper_questionnaire_preview(uow, settings, round_id, kommunekode, language=language,
                                                    today=datetime.now(UTC).date())
    return _pdf(pdf, f"preview-{round_id}-{kommunekode}-paper-questionnaire.pdf")


def _pdf(pdf: bytes, filename: str) -> Response:
    """A preview, shown in the browser and never cached."""
    return Response(pdf, media_type="application/pdf",
                    headers={"Content-Disposition": f'inline; filename="{filename}"', "Cache-Control": "no-store"})
