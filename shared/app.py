"""The FastAPI pieces every service has: health, metrics, request timing, correlation ids."""

from __future__ import annotations

import time
import uuid
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel

from shared.auth import Authenticator
from shared.observability import REQUEST_LATENCY, configure_logging, correlation_id_var
from shared.settings import ServiceSettings


class ErrorDetail(BaseModel):
    """The body of our 4xx answers: FastAPI's ``{"detail": ...}``, where detail is a message, a
    list of field errors, or a structured report (e.g. row errors of a rejected delivery)."""

    detail: str | list[Any] | dict[str, Any]


def install_common(app: FastAPI, settings: ServiceSettings) -> None:
    configure_logging(settings.log_level, settings.log_json)
    app.state.authenticator = Authenticator(settings)
    service = settings.service_name

    @app.middleware("http")
    async def timing_and_correlation(request: Request, call_next):
        incoming = request.headers.get("x-correlation-id")
        # Accept only an opaque id from callers; never let free text (or personal data) in.
        correlation_id = incoming if incoming and len(incoming) <= 64 and incoming.replace("-", "").isalnum() else str(uuid.uuid4())
        token = correlation_id_var.set(correlation_id)
        started = time.perf_counter()
        try:
            response: Response = await call_next(request)
        finally:
            correlation_id_var.reset(token)
        route = request.scope.get("route")
        REQUEST_LATENCY.labels(service, request.method, getattr(route, "path", "unmatched"), str(response.status_code)).observe(
            time.perf_counter() - started
        )
        response.headers["x-correlation-id"] = correlation_id
        return response

    @app.get("/healthz", tags=["ops"], summary="200 when the database and the broker are reachable")
    async def healthz(request: Request) -> JSONResponse:
        runtime = getattr(request.app.state, "runtime", None)
        if runtime is None:
            return JSONResponse({"status": "starting"}, status_code=503)
        checks = await runtime.health()
        healthy = all(value == "ok" for value in checks.values())
        return JSONResponse({"status": "ok" if healthy else "unhealthy", **checks}, status_code=200 if healthy else 503)

    @app.get("/metrics", tags=["ops"], summary="Prometheus metrics", include_in_schema=False)
    async def metrics(request: Request) -> Response:
        runtime = getattr(request.app.state, "runtime", None)
        if runtime is not None:
            await runtime.relay.backlog()
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
