"""What each refusal of dispatch's service functions answers over HTTP: one table, installed on
the app by ``main.create_app``, so routers only call and return (the shape of
``services.ingest.errors``)."""

from __future__ import annotations

from fastapi import FastAPI, status

from services.dispatch import service
from shared.app import ErrorTable, install_error_table

# Exception class -> (status, the detail it answers).
ERRORS: ErrorTable = {
    # A plan this deployment cannot carry out (the message names the field and why).
    service.PlanRefused: (status.HTTP_422_UNPROCESSABLE_CONTENT, str),
    # The round is not defined, or the municipality is unknown, not taking part, or has nothing to print.
    service.PreviewRefused: (status.HTTP_404_NOT_FOUND, str),
}


def install_errors(app: FastAPI) -> None:
    install_error_table(app, ERRORS)
