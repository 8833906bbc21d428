"""Ingest's HTTP API: thin routers over service functions.

Two ways in for a municipality's extract, both validated and stored the same way:

- ``POST /rounds/{round_id}/extracts/{kommunekode}`` with a JSON batch (rows in the body):
  processed at once, answered with the delivery report (201), for small pushes;
- ``POST /rounds/{round_id}/extracts/{kommunekode}/files`` with a CSV, XLSX or JSON file (the
  raw body, or multipart field ``file``): answered at once with a job (202); the job runs in
  the background and ``GET /jobs/{job_id}`` shows its progress and report.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import date
from pathlib import Path
from typing import Literal

from fastapi import APIRouter, Depends, HTTPException, Path as PathParam, Query, Request, status
from fastapi.responses import JSONResponse
from starlette.datastructures import UploadFile

from services.ingest import jobs, service
from services.ingest.domain.errors import ExtractFormatError
from services.ingest.domain.profiles import get_profile, load_profiles
from services.ingest.schemas import DeliveryReport, JobAccepted, JobReport, JsonExtract
from shared.auth import Principal, ensure_kommune_access, get_principal, require_scopes

router = APIRouter(tags=["extracts"])

KOMMUNEKODE_PATTERN = r"^\d{3}$"
ROUND_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
# The format is read from the content (exports are often mislabelled); the declared type only
# has to be one a case system would plausibly send.
UPLOAD_CONTENT_TYPES = frozenset(
    {
        "text/csv",
        "application/csv",
        "text/plain",
        "application/vnd.ms-excel",  # what Windows often declares for .csv
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "application/json",
        "application/x-ndjson",
        "application/octet-stream",
        "multipart/form-data",
    }
)


@router.post(
    "/rounds/{round_id}/extracts/{kommunekode}",
    response_model=DeliveryReport,
    status_code=status.HTTP_201_CREATED,
    summary="Deliver a JSON batch of a municipality's extract for a round (replaces an earlier delivery)",
    responses={
        403: {"description": "not allowed for this municipality"},
        409: {"description": "the round is closed"},
        422: {"description": "delivery rejected"},
    },
)
async def deliver_extract(
    request: Request,
    body: JsonExtract,
    round_id: str = PathParam(pattern=ROUND_PATTERN),
    kommunekode: str = PathParam(pattern=KOMMUNEKODE_PATTERN),
    principal: Principal = Depends(require_scopes("extracts:write")),
) -> DeliveryReport:
    ensure_kommune_access(principal, kommunekode)
    settings = request.app.state.settings
    if len(body.rows) > settings.json_batch_max_rows:
        raise HTTPException(
            status.HTTP_413_CONTENT_TOO_LARGE,
            detail=f"a JSON batch holds at most {settings.json_batch_max_rows:,} rows; upload bigger extracts as a file",
        )
    try:
        outcome = await service.ingest_delivery(
            request.app.state.runtime,
            settings,
            service.DeliveryRequest(
                round_id=round_id,
                kommunekode=kommunekode,
                delivered_by=principal.subject,
                reference_date=body.reference_date,
                policy=body.policy,
            ),
            service.json_rows(body.rows),
        )
    except service.RoundClosed as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, detail=str(exc)) from None
    if outcome.delivery is None:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            detail={
                "message": f"delivery rejected: {outcome.totals.rows_rejected} row(s) with errors and policy reject_all",
                "errors": outcome.report["errors"],
            },
        )
    return service.report_for(outcome.delivery)


@router.post(
    "/rounds/{round_id}/extracts/{kommunekode}/files",
    response_model=JobAccepted,
    status_code=status.HTTP_202_ACCEPTED,
    summary="Upload a municipality's extract file (CSV, XLSX, JSON) for a round; processed as a job",
    responses={
        400: {"description": "empty body"},
        403: {"description": "not allowed for this municipality"},
        409: {"description": "the round is closed"},
        413: {"description": "file too large"},
        415: {"description": "unsupported content type"},
        422: {"description": "the file cannot be read as an extract (format, encoding, missing columns)"},
    },
)
async def upload_extract(
    request: Request,
    round_id: str = PathParam(pattern=ROUND_PATTERN),
    kommunekode: str = PathParam(pattern=KOMMUNEKODE_PATTERN),
    reference_date: date = Query(description="The round's reference date (ages and durations are computed at it)"),
    profile: str = Query("standard", description="Column profile: the vendor's header names (standard, momentum, fasit)"),
    policy: Literal["accept_valid", "reject_all"] = Query("accept_valid"),
    principal: Principal = Depends(require_scopes("extracts:write")),
) -> JSONResponse:
    ensure_kommune_access(principal, kommunekode)
    try:
        profile = get_profile(profile).name
    except LookupError:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, detail=f"unknown column profile; known profiles: {', '.join(sorted(load_profiles()))}"
        ) from None
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in UPLOAD_CONTENT_TYPES:
        raise HTTPException(
            status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
            detail="send the extract as text/csv, an XLSX workbook, application/json, application/x-ndjson, "
            "application/octet-stream, or as multipart/form-data with a 'file' part",
        )
    runtime, settings = request.app.state.runtime, request.app.state.settings
    # Refused before the file is received; the job checks again when it stores the delivery.
    async with runtime.uow() as uow:
        try:
            await service.ensure_round_open(uow.session, round_id)
        except service.RoundClosed as exc:
            raise HTTPException(status.HTTP_409_CONFLICT, detail=str(exc)) from None
    try:
        if content_type == "multipart/form-data":
            path, size = await _save_multipart(request, settings)
        else:
            path, size = await jobs.save_upload(request.stream(), settings.upload_path, settings.max_upload_bytes)
    except jobs.UploadTooLarge as exc:
        raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, detail=str(exc)) from None
    if size == 0:
        path.unlink(missing_ok=True)
        raise HTTPException(status.HTTP_400_BAD_REQUEST, detail="the request body is empty: send the extract file as the body")
    try:
        file_format = await asyncio.to_thread(jobs.inspect_upload, path, profile)
    except ExtractFormatError as exc:
        path.unlink(missing_ok=True)
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=f"the file cannot be read as an extract: {exc}") from None
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    job = await jobs.create_job(
        runtime,
        round_id=round_id,
        kommunekode=kommunekode,
        submitted_by=principal.subject,
        reference_date=reference_date,
        profile=profile,
        policy=policy,
        file_format=file_format,
        path=path,
        size=size,
    )
    status_url = str(request.url_for("get_job", job_id=job.id).path)
    accepted = JobAccepted(job_id=job.id, status="queued", status_url=status_url)
    return JSONResponse(accepted.model_dump(mode="json"), status_code=status.HTTP_202_ACCEPTED, headers={"Location": status_url})


async def _save_multipart(request: Request, settings) -> tuple[Path, int]:
    # Starlette spools file parts to disk beyond 1 MB, so memory stays flat here too.
    async with request.form(max_files=1, max_fields=10) as form:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail="multipart upload needs the extract in a part named 'file'")

        async def chunks() -> AsyncIterator[bytes]:
            while data := await upload.read(jobs.UPLOAD_CHUNK_BYTES):
                yield data

        return await jobs.save_upload(chunks(), settings.upload_path, settings.max_upload_bytes)


@router.get("/jobs/{job_id}", response_model=JobReport, summary="An upload job's progress, and its report when it has ended")
async def get_job(request: Request, job_id: uuid.UUID, principal: Principal = Depends(get_principal)) -> JobReport:
    if not principal.scopes & {"extracts:write", "extracts:read"}:
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail="missing scope: extracts:read or extracts:write")
    job = await jobs.get_job(request.app.state.runtime, job_id)
    if job is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="no such job")
    ensure_kommune_access(principal, job.kommunekode)
    return jobs.job_report(job)


@router.get("/deliveries/{delivery_id}", response_model=DeliveryReport, summary="A delivery's report")
async def get_delivery(
    request: Request, delivery_id: uuid.UUID, principal: Principal = Depends(require_scopes("extracts:read"))
) -> DeliveryReport:
    async with request.app.state.runtime.uow() as uow:
        delivery = await service.get_delivery(uow, delivery_id)
    if delivery is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="no such delivery")
    ensure_kommune_access(principal, delivery.kommunekode)
    return service.report_for(delivery)

