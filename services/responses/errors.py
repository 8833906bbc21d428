"""What each refusal of responses' service functions answers over HTTP (the JSON API, and the
interviewer's page for an interview that is not there): one table, installed on the app by
``main.create_app``, so routers only call and return. The citizen's pages answer every refusal
with their own Danish page (web.py: ``link_problem``); nothing here reaches them.

An unknown link's status depends on the request (protection.unknown_link_answer: being prepared,
too many guesses, or unknown), so its row's detail is given per status."""

from __future__ import annotations

from fastapi import FastAPI, Request, status
from fastapi.responses import JSONResponse

from services.responses import interviews, paper, questionnaires, service
from services.responses.domain import QuestionnaireError
from services.responses.protection import unknown_link_answer
from shared.app import ErrorTable, install_error_table

UNKNOWN_LINK = {
    status.HTTP_404_NOT_FOUND: "unknown link",
    status.HTTP_429_TOO_MANY_REQUESTS: "too many unknown links from this address",
    status.HTTP_503_SERVICE_UNAVAILABLE: "this link is being prepared: try again in a minute",
}


def _invalid(exc: service.InvalidAnswers) -> list[dict]:
    return [{"question_id": e.question_id, "code": e.code, "message": e.message.get("en")} for e in exc.result.errors]


def _already_entered(exc: paper.AlreadyEntered) -> str:
    already = "the citizen has opted out" if exc.status == "opted_out" else "its answers are already in"
    return f"{exc.form}: {already} (entered before, or answered on the web); a second entry is refused and nothing was written"


# Exception class -> (status, the detail it answers). A subclass's own row wins over its base's.
ERRORS: ErrorTable = {
    service.FieldworkEnded: (
        status.HTTP_410_GONE,
        lambda exc: "fieldwork has ended for this round: answers can no longer be sent in (a saved draft is kept)",
    ),
    service.LinkExpired: (status.HTTP_410_GONE, lambda exc: "the survey has closed for this link"),
    service.LinkUsed: (status.HTTP_409_CONFLICT, lambda exc: "this link has already been used"),
    service.InvalidAnswers: (status.HTTP_422_UNPROCESSABLE_CONTENT, _invalid),
    paper.AlreadyEntered: (status.HTTP_409_CONFLICT, _already_entered),
    paper.UnknownAnswerId: (
        status.HTTP_404_NOT_FOUND,
        lambda exc: f"no questionnaire has {paper.form_name(exc.args[0])}: check the number on the form",
    ),
    questionnaires.SupplementConflict: (status.HTTP_409_CONFLICT, lambda exc: "this version is already published with other content"),
    QuestionnaireError: (status.HTTP_422_UNPROCESSABLE_CONTENT, str),
    interviews.UnknownInterview: (status.HTTP_404_NOT_FOUND, lambda exc: "no such interview in this round"),
}


def install_errors(app: FastAPI) -> None:
    install_error_table(app, ERRORS)
    app.add_exception_handler(service.UnknownLink, _unknown_link)


async def _unknown_link(request: Request, exc: Exception) -> JSONResponse:
    status_code, headers = unknown_link_answer(request)
    return JSONResponse({"detail": UNKNOWN_LINK[status_code]}, status_code=status_code, headers=headers)
