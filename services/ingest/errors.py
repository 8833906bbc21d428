"""What each refusal of ingest's service functions answers over HTTP: one table, installed on the
app by ``main.create_app``, so routers only call and return. Every answer says what is wrong
(and, for a rule, every problem), in FastAPI's ``{"detail": ...}`` body."""

from __future__ import annotations

from fastapi import FastAPI, status

from services.ingest import jobs, profiles, rounds, service
from services.ingest.domain.rounds import FieldLocked, RoundRuleError, TransitionRefused
from services.ingest.privacy import service as privacy
from shared.app import ErrorTable, install_error_table


def _problems(exc: RoundRuleError) -> dict:
    return {"message": str(exc), "problems": exc.problems}


# Exception class -> (status, the detail it answers). A subclass's own row wins over its base's.
ERRORS: ErrorTable = {
    rounds.RoundUnknown: (status.HTTP_404_NOT_FOUND, str),
    rounds.RoundExists: (status.HTTP_409_CONFLICT, lambda exc: f"round {exc} is already defined: PATCH it"),
    # The round's phase no longer allows the change or the action (and why).
    FieldLocked: (status.HTTP_409_CONFLICT, _problems),
    TransitionRefused: (status.HTTP_409_CONFLICT, _problems),
    # An inconsistent definition: every problem listed.
    RoundRuleError: (status.HTTP_422_UNPROCESSABLE_CONTENT, _problems),
    # The round takes no delivery from this municipality now.
    service.DeliveryRefused: (status.HTTP_409_CONFLICT, str),
    service.ReplacementRefused: (
        status.HTTP_409_CONFLICT,
        lambda exc: {"message": str(exc), "errors": exc.report["errors"]},
    ),
    service.BatchTooLarge: (status.HTTP_413_CONTENT_TOO_LARGE, str),
    # A reject_all delivery with a row error: the message and every error found.
    service.DeliveryRejected: (
        status.HTTP_422_UNPROCESSABLE_CONTENT,
        lambda exc: {"message": str(exc), "errors": exc.report["errors"]},
    ),
    profiles.UnknownProfile: (status.HTTP_404_NOT_FOUND, str),
    profiles.ProfileRefused: (status.HTTP_422_UNPROCESSABLE_CONTENT, str),
    jobs.UploadTooLarge: (status.HTTP_413_CONTENT_TOO_LARGE, str),
    privacy.RoundAlreadyClosed: (status.HTTP_409_CONFLICT, lambda exc: f"round {exc} is already closed"),
    # The message never repeats the number.
    privacy.InvalidCpr: (status.HTTP_422_UNPROCESSABLE_CONTENT, lambda exc: [{"loc": ["body", "cpr"], "msg": str(exc)}]),
}


def install_errors(app: FastAPI) -> None:
    install_error_table(app, ERRORS)
