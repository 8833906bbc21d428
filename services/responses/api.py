from __future__ import annotations

from fastapi import APIRouter, HTTPException, Path, Request, status

from services.responses import service
from services.responses.schemas import Submission, SubmissionReceipt

router = APIRouter(tags=["survey"])
TOKEN = Path(pattern=r"^[A-Za-z0-9_-]{20,100}$", description="The token from the citizen's letter")


def _link_error(exc: Exception) -> HTTPException:
    if isinstance(exc, service.UnknownLink):
        return HTTPException(status.HTTP_404_NOT_FOUND, detail="unknown link")
    if isinstance(exc, service.LinkExpired):
        return HTTPException(status.HTTP_410_GONE, detail="the survey has closed for this link")
    return HTTPException(status.HTTP_409_CONFLICT, detail="this link has already been used")


@router.post(
    "/api/survey/{token}/submission",
    response_model=SubmissionReceipt,
    status_code=status.HTTP_201_CREATED,
    summary="Submit the answers; spends the link",
    responses={404: {}, 409: {}, 410: {}},
)
async def submit(request: Request, body: Submission, token: str = TOKEN) -> SubmissionReceipt:
    async with request.app.state.runtime.uow() as uow:
        try:
            respondent = await service.submit(uow, request.app.state.settings, token, body.answers)
        except (service.UnknownLink, service.LinkUsed, service.LinkExpired) as exc:
            raise _link_error(exc) from None
    return SubmissionReceipt(status="submitted", round_id=respondent.round_id)


@router.post(
    "/api/survey/{token}/opt-out",
    response_model=SubmissionReceipt,
    summary="The citizen does not wish to take part; stops reminders",
    responses={404: {}, 409: {}, 410: {}},
)
async def opt_out(request: Request, token: str = TOKEN) -> SubmissionReceipt:
    async with request.app.state.runtime.uow() as uow:
        try:
            respondent = await service.opt_out(uow, token)
        except (service.UnknownLink, service.LinkUsed, service.LinkExpired) as exc:
            raise _link_error(exc) from None
    return SubmissionReceipt(status="opted_out", round_id=respondent.round_id)
