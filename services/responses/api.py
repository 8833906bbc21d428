"""JSON API: the survey submission used by scripts and the demo, paper entry, and the round's
questionnaire administration. Thin: every decision is in service.py, paper.py and
questionnaire_admin.py; their refusals answer as errors.py says."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, status
from fastapi.responses import JSONResponse

from services.responses import paper, questionnaire_admin, service
from services.responses.deps import Kommunekode, Operator, PaperEntry, QuestionnaireAdmin, RoundId, Settings, Token, Uow
from services.responses.domain import LocalSupplement
from services.responses.schemas import (
    PaperReceipt,
    PaperSubmission,
    RoundQuestionnaireIn,
    RoundQuestionnaireOut,
    Submission,
    SubmissionReceipt,
)
from shared.app import ErrorDetail
from shared.auth import ensure_kommune_access

router = APIRouter(tags=["survey"])
admin = APIRouter(tags=["admin"])
# What a citizen's link may answer instead (errors.py).
LINK_REFUSALS: dict[int | str, dict] = {
    404: {}, 409: {}, 410: {}, 429: {}, 503: {"description": "a link dispatch issued that is not known here yet: try again (Retry-After)"},
}


@router.post(
    "/api/survey/{token}/submission",
    response_model=SubmissionReceipt,
    status_code=status.HTTP_201_CREATED,
    summary="Submit the answers; spends the link",
    description="Answers are option codes (\"meget_enig\") or, for scored scales, scores 1-5; every question may be "
    "skipped. Stored and published as option codes, free text scrubbed of personal data.",
    responses={**LINK_REFUSALS, 422: {}},
)
async def submit(uow: Uow, settings: Settings, body: Submission, token: Token) -> SubmissionReceipt:
    respondent = await service.submit(uow, settings, token, body.answers, language=body.language)
    return SubmissionReceipt(status="submitted", round_id=respondent.round_id)


@router.post(
    "/api/survey/{token}/opt-out",
    response_model=SubmissionReceipt,
    summary="The citizen does not wish to take part; stops reminders",
    responses=LINK_REFUSALS,
)
async def opt_out(uow: Uow, token: Token) -> SubmissionReceipt:
    respondent = await service.opt_out(uow, token)
    return SubmissionReceipt(status="opted_out", round_id=respondent.round_id)


# --- paper ------------------------------------------------------------------------------------


@admin.post(
    "/api/paper/responses",
    response_model=PaperReceipt,
    status_code=status.HTTP_201_CREATED,
    summary="Key in a paper questionnaire (mode 'paper') by its answer id; once",
    description="The form is named by the answer id printed on it (or, for a form without one, the link's "
    "token). A form is entered once: a second entry, or one after the citizen answered on the web or opted "
    "out, is refused with 409 and nothing is written.",
    responses={403: {}, 404: {}, 409: {}, 410: {}, 422: {}},
)
async def submit_paper(uow: Uow, settings: Settings, body: PaperSubmission, principal: PaperEntry) -> PaperReceipt:
    respondent = await paper.enter(
        uow, settings, body.answers, token=body.token, answer_id=body.answer_id, entered_by=principal.subject,
        authorize=lambda r: ensure_kommune_access(principal, r.kommunekode), language=body.language,
    )
    return PaperReceipt(
        status="submitted",
        round_id=respondent.round_id,
        kommunekode=respondent.kommunekode,
        mode="paper",
        questionnaire_key=respondent.questionnaire_key or "",
    )


# --- questionnaire administration -------------------------------------------------------------


@admin.put(
    "/api/admin/supplements/{kommunekode}/{version}",
    status_code=status.HTTP_201_CREATED,
    summary="Publish a municipality's local supplement (immutable per version)",
    responses={
        200: {"description": "already published with identical content"},
        409: {"model": ErrorDetail},
        422: {"model": ErrorDetail, "description": "invalid body, or a supplement the questionnaire rules refuse"},
    },
)
async def publish_supplement(
    uow: Uow, body: LocalSupplement, kommunekode: Kommunekode, version: Annotated[int, Path(ge=1)], principal: QuestionnaireAdmin
) -> JSONResponse:
    ensure_kommune_access(principal, kommunekode)
    if body.kommunekode != kommunekode or body.version != version:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail="kommunekode and version must match the path")
    created = await questionnaire_admin.publish_supplement(uow, body)
    return JSONResponse({"kommunekode": kommunekode, "version": version}, status_code=201 if created else 200)


@admin.put(
    "/api/admin/rounds/{round_id}/questionnaire",
    response_model=RoundQuestionnaireOut,
    summary="Set a round's questionnaire: core, optional modules, municipalities' supplements",
    responses={422: {"model": ErrorDetail, "description": "invalid body, or an unknown questionnaire, module or supplement"}},
    description="Citizens who already opened their link keep the version they were given.",
)
async def configure_round(
    uow: Uow, settings: Settings, body: RoundQuestionnaireIn, round_id: RoundId, principal: Operator
) -> RoundQuestionnaireOut:
    return await questionnaire_admin.configure_round(uow, settings, round_id, body.core, body.modules, body.supplements)


@admin.get("/api/admin/rounds/{round_id}/questionnaire", response_model=RoundQuestionnaireOut, summary="A round's questionnaire")
async def get_round(uow: Uow, settings: Settings, round_id: RoundId, principal: Operator) -> RoundQuestionnaireOut:
    return await questionnaire_admin.round_questionnaire(uow, settings, round_id)
