"""What each refusal of sampling's service functions answers over HTTP: one table, installed on
the app by ``main.create_app``, so routers only call and return (the shape of
``services.ingest.errors``). The refusals that name no reason carry the round id as their
message (``services.sampling.service.errors``)."""

from __future__ import annotations

from fastapi import FastAPI, status

from services.sampling import service
from shared.app import ErrorTable, install_error_table

# Exception class -> (status, the detail it answers).
ERRORS: ErrorTable = {
    service.DrawExists: (status.HTTP_409_CONFLICT, lambda exc: f"round {exc} already has a draw"),
    service.StaleAllocation: (
        status.HTTP_409_CONFLICT,
        lambda exc: f"the frame of round {exc} changed since the allocation was computed: preview it again",
    ),
    service.NoAllocation: (status.HTTP_404_NOT_FOUND, lambda exc: f"round {exc} has no allocation yet: POST one first"),
    service.EmptyFrame: (status.HTTP_422_UNPROCESSABLE_CONTENT, lambda exc: f"round {exc} has no population yet"),
    # Rules or overrides break a hard rule: the message says which.
    service.InvalidAllocation: (status.HTTP_422_UNPROCESSABLE_CONTENT, str),
    service.RoundNotDefined: (
        status.HTTP_404_NOT_FOUND,
        lambda exc: f"round {exc} is not defined: KL's operator creates it at ingest (POST /rounds), and "
        "sampling learns it from round.defined",
    ),
    # The round's phase or readiness forbids the work: the message says why.
    service.RoundRefused: (status.HTTP_409_CONFLICT, str),
}

# What the routes that compute, read or draw an allocation document for their refusals.
RESPONSES = {
    404: {"description": "the round is not defined, or has no allocation"},
    409: {
        "description": "already drawn, the frame changed since the allocation, the round's phase is past the draw, or "
        "(a draw) not every participating municipality has delivered before the deadline and force is not set"
    },
    422: {"description": "empty frame, or rules/overrides break a hard rule"},
}


def install_errors(app: FastAPI) -> None:
    install_error_table(app, ERRORS)
