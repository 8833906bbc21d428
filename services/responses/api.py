"""JSON API: the survey submission used by scripts and the demo, paper entry, and the round's
questionnaire administration. Thin: every decision is in service.py / questionnaires.py."""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, Path, Request, status
from fastapi.responses import JSONResponse

from services.responses import paper, printed, questionnaires, service
from services.responses.domain import LocalSupplement, QuestionnaireError, ValidationResult
from services.responses.protection import client_ip
from services.responses.schemas import (
    PaperReceipt,
    PaperSubmission,
    RoundQuestionnaireIn,
    RoundQuestionnaireOut,
    Submission,
    SubmissionReceipt,
)
from shared.app import ErrorDetail
from shared.auth import Principal, ensure_kommune_access, require_scopes
from shared.events import ROUND_ID_PATTERN

router = APIRouter(tags=["survey"])
admin = APIRouter(tags=["admin"])
TOKEN = Path(pattern=r"^[A-Za-z0-9_-]{20,100}$", description="The token from the citizen's letter")


def _link_error(request: Request, exc: Exception) -> HTTPException:
    if isinstance(exc, service.UnknownLink):
        settings = request.app.state.settings
        if service.link_pending(settings, request.path_params.get("token", "")):
            return HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, detail="this link is being prepared: try again in a minute",
                                 headers={"Retry-After": str(settings.link_pending_retry_seconds)})
        if (wait := request.app.state.limiter.miss(client_ip(request))) is not None:
            return HTTPException(
                status.HTTP_429_TOO_MANY_REQUESTS, detail="too many unknown links from this address", headers={"Retry-After": str(wait)}
            )
        return HTTPException(status.HTTP_404_NOT_FOUND, detail="unknown link")
    if isinstance(exc, service.FieldworkEnded):
        return HTTPException(status.HTTP_410_GONE, detail="fieldwork has ended for this round: answers can no longer be "
                             "sent in (a saved draft is kept)")
    if isinstance(exc, service.LinkExpired):
        return HTTPException(status.HTTP_410_GONE, detail="the survey has closed for this link")
    return HTTPException(status.HTTP_409_CONFLICT, detail="this link has already been used")


def _invalid(result: ValidationResult, lang: str = "en") -> HTTPException:
    return HTTPException(
        status.HTTP_422_UNPROCESSABLE_CONTENT,
        detail=[{"question_id": e.question_id, "code": e.code, "message": e.message.get(lang)} for e in result.errors],  # type: ignore[arg-type]
    )


@router.post(
    "/api/survey/{token}/submission",
    response_model=SubmissionReceipt,
    status_code=status.HTTP_201_CREATED,
    summary="Submit the answers; spends the link",
    description="Answers are option codes (\"meget_enig\") or, for scored scales, scores 1-5; every question may be "
    "skipped. Stored and published as option codes, free text scrubbed of personal data.",
    responses={404: {}, 409: {}, 410: {}, 422: {}, 429: {}, 503: {"description": "a link dispatch issued that is not known here yet: try again (Retry-After)"}},
)
async def submit(request: Request, body: Submission, token: str = TOKEN) -> SubmissionReceipt:
    async with request.app.state.runtime.uow() as uow:
        try:
            respondent = await service.submit(uow, request.app.state.settings, token, body.answers, language=body.language)
        except (service.UnknownLink, service.LinkUsed, service.LinkExpired) as exc:
            raise _link_error(request, exc) from None
        except service.InvalidAnswers as exc:
            raise _invalid(exc.result) from None
    return SubmissionReceipt(status="submitted", round_id=respondent.round_id)


@router.post(
    "/api/survey/{token}/opt-out",
    response_model=SubmissionReceipt,
    summary="The citizen does not wish to take part; stops reminders",
    responses={404: {}, 409: {}, 410: {}, 429: {}, 503: {"description": "a link dispatch issued that is not known here yet: try again (Retry-After)"}},
)
async def opt_out(request: Request, token: str = TOKEN) -> SubmissionReceipt:
    async with request.app.state.runtime.uow() as uow:
        try:
            respondent = await service.opt_out(uow, token)
        except (service.UnknownLink, service.LinkUsed, service.LinkExpired) as exc:
            raise _link_error(request, exc) from None
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
async def submit_paper(
    request: Request, body: PaperSubmission, principal: Principal = Depends(require_scopes("responses:paper"))
) -> PaperReceipt:
    form = f"answer id {body.answer_id}" if body.answer_id else "this link"
    async with request.app.state.runtime.uow() as uow:
        try:
            respondent = await paper.enter(
                uow, request.app.state.settings, body.answers, token=body.token, answer_id=body.answer_id,
                entered_by=principal.subject, authorize=lambda r: ensure_kommune_access(principal, r.kommunekode),
                language=body.language,
            )
        except paper.UnknownAnswerId:
            raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no questionnaire has {form}: check the number "
                                "on the form") from None
        except service.LinkUsed as exc:
            already = "the citizen has opted out" if exc.status == "opted_out" else "its answers are already in"
            raise HTTPException(status.HTTP_409_CONFLICT, detail=f"{form}: {already} (entered before, or answered "
                                "on the web); a second entry is refused and nothing was written") from None
        except (service.UnknownLink, service.LinkExpired) as exc:
            raise _link_error(request, exc) from None
        except service.InvalidAnswers as exc:
            raise _invalid(exc.result) from None
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
    request: Request,
    body: LocalSupplement,
    kommunekode: str = Path(pattern=r"^\d{3}$"),
    version: int = Path(ge=1),
    principal: Principal = Depends(require_scopes("rounds:admin")),
) -> JSONResponse:
    ensure_kommune_access(principal, kommunekode)
    if body.kommunekode != kommunekode or body.version != version:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail="kommunekode and version must match the path")
    async with request.app.state.runtime.uow() as uow:
        try:
            created = await questionnaires.publish_supplement(uow.session, body)
        except questionnaires.SupplementConflict:
            raise HTTPException(status.HTTP_409_CONFLICT, detail="this version is already published with other content") from None
        except QuestionnaireError as exc:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=str(exc)) from None
        await uow.commit()
    return JSONResponse({"kommunekode": kommunekode, "version": version}, status_code=201 if created else 200)


@admin.put(
    "/api/admin/rounds/{round_id}/questionnaire",
    response_model=RoundQuestionnaireOut,
    summary="Set a round's questionnaire: core, optional modules, municipalities' supplements",
    responses={422: {"model": ErrorDetail, "description": "invalid body, or an unknown questionnaire, module or supplement"}},
    description="Citizens who already opened their link keep the version they were given.",
)
async def configure_round(
    request: Request,
    body: RoundQuestionnaireIn,
    round_id: str = Path(pattern=ROUND_ID_PATTERN),
    principal: Principal = Depends(require_scopes("rounds:admin", "kommuner:all")),
) -> RoundQuestionnaireOut:
    async with request.app.state.runtime.uow() as uow:
        try:
            await questionnaires.configure_round(uow.session, round_id, body.core, body.modules, body.supplements)
        except QuestionnaireError as exc:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=str(exc)) from None
        await printed.publish_offered(uow, request.app.state.settings, round_id)  # dispatch prints from it
        await uow.commit()
        return await _round_out(request, uow, round_id)


@admin.get("/api/admin/rounds/{round_id}/questionnaire", response_model=RoundQuestionnaireOut, summary="A round's questionnaire")
async def get_round(
    request: Request,
    round_id: str = Path(pattern=ROUND_ID_PATTERN),
    principal: Principal = Depends(require_scopes("rounds:admin", "kommuner:all")),
) -> RoundQuestionnaireOut:
    async with request.app.state.runtime.uow() as uow:
        return await _round_out(request, uow, round_id)


async def _round_out(request: Request, uow, round_id: str) -> RoundQuestionnaireOut:
    from services.responses.models import RoundQuestionnaire

    settings = request.app.state.settings
    config = await uow.session.get(RoundQuestionnaire, round_id)
    keys = {"default": (await questionnaires.questionnaire_for_round(uow.session, settings, round_id, "")).version_key}
    for kommunekode in (config.supplements if config else {}):
        keys[kommunekode] = (await questionnaires.questionnaire_for_round(uow.session, settings, round_id, kommunekode)).version_key
    return RoundQuestionnaireOut(
        round_id=round_id,
        core=config.core if config else settings.default_questionnaire,
        modules=config.modules if config else [],
        supplements=config.supplements if config else {},
        version_keys=keys,
    )
