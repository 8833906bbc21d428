"""What each refusal of dispatch's service functions answers over HTTP: one table, installed on
the app by ``main.create_app``, so routers only call and return (the shape of
``services.ingest.errors``)."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from fastapi import FastAPI, Request, status
from fastapi.responses import JSONResponse

from services.dispatch import service

# Exception class -> (status, the detail it answers).
ERRORS: dict[type[Exception], tuple[int, Callable[[Any], Any]]] = {
    # A plan this deployment cannot carry out (the message names the field and why).
    service.PlanRefused: (status.HTTP_422_UNPROCESSABLE_CONTENT, str),
    # The round is not defined, or the municipality is unknown, not taking part, or has nothing to print.
    service.PreviewRefused: (status.HTTP_404_NOT_FOUND, str),
}


def install_errors(app: FastAPI) -> None:
    for error, (status_code, detail) in ERRORS.items():
        app.add_exception_handler(error, partial(_answer, status_code, detail))


async def _answer(status_code: int, detail: Callable[[Any], Any], request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"detail": detail(exc)}, status_code=status_code)
