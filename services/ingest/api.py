"""Ingest's HTTP API: thin routers over service functions.

Two ways in for a municipality's extract, both validated and stored the same way:

- ``POST /rounds/{round_id}/extracts/{kommunekode}`` with a JSON batch (rows in the body):
  processed at once, answered with the delivery report (201), for small pushes;
- ``POST /rounds/{round_id}/extracts/{kommunekode}/files`` with a CSV, XLSX or JSON file (the
  raw body, or multipart field ``file``): answered at once with a job (202); the job runs in
  the background and ``GET /jobs/{job_id}`` shows its progress and report.

Both need a round KL's operator has defined (``POST /rounds``, services.ingest.round_api), in a
phase that takes deliveries, and a municipality that takes part in it (404, 409 otherwise;
services.ingest.domain.rounds). Both take ``dry_run=true`` (validate and report in full, store
nothing) and
``confirm_replacement=true`` (accept a delivery that would shrink the municipality's frame,
``domain.replacement``). The rules are readable: ``GET /maalgrupper`` (the target-group mapping)
and ``GET /profiles`` (the column profiles; ``POST /profiles`` registers one). KL's operator
(``rounds:admin``) lists a round's deliveries and jobs. The service functions' refusals answer
as ``services.ingest.errors`` says.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import date
from pathlib import Path
from typing import Literal

from fastapi import APIRouter, HTTPException, Query, Request, status
from fastapi.responses import JSONResponse
from starlette.datastructures import UploadFile

from services.ingest import jobs, profiles, service
from services.ingest.config import IngestSettings
from services.ingest.deps import (
    DeliveryReader,
    JobReader,
    Kommunekode,
    Operator,
    ProfileWriter,
    RoundId,
    RuleReader,
    Runtime,
    Settings,
    Uow,
    Vendor,
)
from services.ingest.domain.classification import load_mapping
from services.ingest.domain.errors import ExtractFormatError, MissingColumnsError
from services.ingest.domain.readers import ExtractFormat
from services.ingest.schemas import (
    DeliveryReport,
    DeliverySummary,
    JobAccepted,
    JobReport,
    JobSummary,
    JsonExtract,
    ProfileRegistration,
)
from shared.auth import ensure_kommune_access

router = APIRouter(tags=["extracts"])
MAX_FILE_NAME = 200

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
DRY_RUN = Query(False, description="Validate and report in full; store nothing")
CONFIRM_REPLACEMENT = Query(False, description="Accept a delivery with no valid citizens, or under half of those it replaces")


@router.post(
    "/rounds/{round_id}/extracts/{kommunekode}",
    response_model=DeliveryReport,
    status_code=status.HTTP_201_CREATED,
    summary="Deliver a JSON batch of a municipality's extract for a round (replaces an earlier delivery)",
    responses={
        403: {"description": "not allowed for this municipality"},
        200: {"description": "dry run: the report, nothing stored", "model": DeliveryReport},
        404: {"description": "the round is not defined (KL's operator creates it with POST /rounds)"},
        409: {
            "description": "the round takes no delivery (drawn, closed, or the municipality does not take part), or the "
            "delivery would remove citizens without confirm_replacement"
        },
        422: {"description": "delivery rejected"},
    },
)
async def deliver_extract(
    uow: Uow,
    settings: Settings,
    body: JsonExtract,
    round_id: RoundId,
    kommunekode: Kommunekode,
    principal: Vendor,
    dry_run: bool = DRY_RUN,
    confirm_replacement: bool = CONFIRM_REPLACEMENT,
) -> DeliveryReport:
    ensure_kommune_access(principal, kommunekode)
    delivery_request = service.DeliveryRequest(
        round_id=round_id,
        kommunekode=kommunekode,
        delivered_by=principal.subject,
        reference_date=body.reference_date,
        policy=body.policy,
        today=service.upload_day(None),
        dry_run=dry_run,
        confirm_replacement=confirm_replacement,
    )
    report = await service.deliver_batch(uow, settings, delivery_request, body.rows)
    if report.status == "validated":  # a dry run: 200, nothing was created
        return JSONResponse(report.model_dump(mode="json"), status_code=status.HTTP_200_OK)
    return report


# The upload's body as OpenAPI shows it: the route reads the raw body itself (files of a million
# rows are streamed to disk, never parsed by the framework), so its layout is declared here.
UPLOAD_CSV_EXAMPLE = (
    "CPR-nummer;Ydelse;Overgangsdato;Seneste samtale;Forløb afsluttet;Telefon;Passiv;Navn\n"
    "010190-1235;Dagpenge;01-01-2022;15-06-2023;nej;12 34 56 78;nej;Søren Ærø\n"
    "030375-3457;Kontanthjælp - aktivitetsparat;01-06-2021;;ja;;nej;Bo Berg\n"
)
UPLOAD_BODY = {
    "required": True,
    "description": (
        "The extract: one row per citizen, a header row naming the columns in the vendor's words (the column "
        "profile maps them: GET /profiles; docs/extracts.md). CSV (separator ; , or tab; UTF-8, UTF-8 with BOM or "
        "Windows-1252; dates dd-mm-yyyy, yyyy-mm-dd or Excel serials), XLSX (first sheet), JSON or NDJSON (the "
        "rows of POST /rounds/{round_id}/extracts/{kommunekode}), as the raw body or as a multipart field 'file'. "
        "Required columns: the CPR number, the benefit (ydelse) and the transition date (overgangsdato); the "
        "visitation category, latest interview, ended, phone, passive flag, name, research protection and exemption "
        "from Digital Post (fritaget for Digital Post) are optional."
    ),
    "content": {
        "text/csv": {"schema": {"type": "string"}, "example": UPLOAD_CSV_EXAMPLE},
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": {"schema": {"type": "string", "format": "binary"}},
        "application/json": {"schema": {"type": "array", "items": {"$ref": "#/components/schemas/ExtractRow"}}},
        "multipart/form-data": {
            "schema": {"type": "object", "required": ["file"], "properties": {"file": {"type": "string", "format": "binary"}}}
        },
    },
}


@router.post(
    "/rounds/{round_id}/extracts/{kommunekode}/files",
    response_model=JobAccepted,
    status_code=status.HTTP_202_ACCEPTED,
    summary="Upload a municipality's extract file (CSV, XLSX, JSON) for a round; processed as a job",
    openapi_extra={"requestBody": UPLOAD_BODY},
    responses={
        400: {"description": "empty body"},
        403: {"description": "not allowed for this municipality"},
        404: {"description": "the round is not defined (KL's operator creates it with POST /rounds)"},
        409: {
            "description": "the round takes no delivery (drawn, closed, or the municipality does not take part), or a "
            "header-only file would remove citizens without confirm_replacement"
        },
        413: {"description": "file too large"},
        415: {"description": "unsupported content type"},
        422: {"description": "the file cannot be read as an extract (format, encoding, missing columns)"},
    },
)
async def upload_extract(
    request: Request,
    uow: Uow,
    runtime: Runtime,
    settings: Settings,
    round_id: RoundId,
    kommunekode: Kommunekode,
    principal: Vendor,
    reference_date: date = Query(description="The round's reference date (ages and durations are computed at it)"),
    profile: str = Query(
        "standard",
        description="Column profile: the vendor's header names (standard, momentum, fasit, or one registered at "
        "POST /profiles; name@version for an older version). GET /profiles lists them",
    ),
    column_map: str | None = Query(
        None,
        description='A one-off mapping of canonical columns to this file\'s headers, as JSON: {"overgangsdato": "Dato for skift"}',
    ),
    policy: Literal["accept_valid", "reject_all"] = Query("accept_valid"),
    dry_run: bool = DRY_RUN,
    confirm_replacement: bool = CONFIRM_REPLACEMENT,
    filename: str | None = Query(None, max_length=MAX_FILE_NAME, description="The file's name, for the round's listing"),
) -> JSONResponse:
    ensure_kommune_access(principal, kommunekode)
    column_profile = await profiles.for_upload(uow, profile, column_map)
    content_type = _upload_content_type(request)
    # Refused before the file is received; the job checks again when it stores the delivery.
    await service.check_round_open(uow, round_id, kommunekode)
    path, size, part_name = await _receive(request, settings, content_type)
    try:
        file_format, has_rows = await _inspect(path, column_profile)
        if not has_rows and not dry_run and not confirm_replacement:
            await service.refuse_empty_replacement(uow, round_id, kommunekode)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    job = await jobs.create_job(
        uow,
        runtime,
        round_id=round_id,
        kommunekode=kommunekode,
        submitted_by=principal.subject,
        reference_date=reference_date,
        profile=column_profile,
        policy=policy,
        file_format=file_format,
        path=path,
        size=size,
        dry_run=dry_run,
        confirm_replacement=confirm_replacement,
        file_name=_file_name(filename or part_name),
    )
    status_url = str(request.url_for("get_job", job_id=job.id).path)
    accepted = JobAccepted(job_id=job.id, status="queued", status_url=status_url)
    return JSONResponse(accepted.model_dump(mode="json"), status_code=status.HTTP_202_ACCEPTED, headers={"Location": status_url})


def _upload_content_type(request: Request) -> str:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in UPLOAD_CONTENT_TYPES:
        raise HTTPException(
            status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
            detail="send the extract as text/csv, an XLSX workbook, application/json, application/x-ndjson, "
            "application/octet-stream, or as multipart/form-data with a 'file' part",
        )
    return content_type


async def _receive(request: Request, settings: IngestSettings, content_type: str) -> tuple[Path, int, str | None]:
    """The body (or its multipart 'file' part) streamed to a private file: its path, size and,
    for a multipart part, the file name it came with. 400 for an empty body."""
    if content_type == "multipart/form-data":
        path, size, part_name = await _save_multipart(request, settings)
    else:
        path, size = await jobs.save_upload(request.stream(), settings.upload_path, settings.max_upload_bytes)
        part_name = None
    if size == 0:
        path.unlink(missing_ok=True)
        raise HTTPException(status.HTTP_400_BAD_REQUEST, detail="the request body is empty: send the extract file as the body")
    return path, size, part_name


async def _inspect(path: Path, column_profile: profiles.ColumnProfile) -> tuple[ExtractFormat, bool]:
    """The file's format and whether a data row follows its header; 422 for a file that cannot
    be read as an extract."""
    try:
        return await asyncio.to_thread(jobs.inspect_upload, path, column_profile)
    except MissingColumnsError as exc:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            detail={"message": f"the file cannot be read as an extract: {exc}", "missing_columns": exc.missing},
        ) from None
    except ExtractFormatError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=f"the file cannot be read as an extract: {exc}") from None


def _file_name(name: str | None) -> str | None:
    """Just the name (no directories), printable, capped."""
    if not name:
        return None
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    cleaned = "".join(char for char in base if char.isprintable())[:MAX_FILE_NAME]
    return cleaned or None


async def _save_multipart(request: Request, settings: IngestSettings) -> tuple[Path, int, str | None]:
    # Starlette spools file parts to disk beyond 1 MB, so memory stays flat here too.
    async with request.form(max_files=1, max_fields=10) as form:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail="multipart upload needs the extract in a part named 'file'")

        async def chunks() -> AsyncIterator[bytes]:
            while data := await upload.read(jobs.UPLOAD_CHUNK_BYTES):
                yield data

        path, size = await jobs.save_upload(chunks(), settings.upload_path, settings.max_upload_bytes)
        return path, size, upload.filename


@router.get("/jobs/{job_id}", response_model=JobReport, summary="An upload job's progress, and its report when it has ended")
async def get_job(uow: Uow, job_id: uuid.UUID, principal: JobReader) -> JobReport:
    job = await jobs.get_job(uow, job_id)
    if job is None or not principal.may_act_for(job.kommunekode):  # as for a delivery, below
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="no such job")
    return jobs.job_report(job)


@router.get("/deliveries/{delivery_id}", response_model=DeliveryReport, summary="A delivery's report")
async def get_delivery(uow: Uow, delivery_id: uuid.UUID, principal: DeliveryReader) -> DeliveryReport:
    report = await service.delivery_report(uow, delivery_id)
    # Another municipality's delivery answers as an unknown one: neither its existence nor its
    # municipality is told.
    if report is None or not principal.may_act_for(report.kommunekode):
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="no such delivery")
    return report


@router.get(
    "/rounds/{round_id}/deliveries",
    response_model=list[DeliverySummary],
    summary="Every delivery of a round, newest first (KL's operator)",
)
async def list_round_deliveries(uow: Uow, round_id: RoundId, principal: Operator) -> list[DeliverySummary]:
    return await service.list_deliveries(uow, round_id)


@router.get(
    "/rounds/{round_id}/jobs",
    response_model=list[JobSummary],
    summary="Every upload job of a round, newest first: who, when, file, counts, status (KL's operator)",
)
async def list_round_jobs(uow: Uow, round_id: RoundId, principal: Operator) -> list[JobSummary]:
    return await jobs.list_jobs(uow, round_id)


# --- the rules, readable --------------------------------------------------------------------------

@router.get("/maalgrupper", tags=["rules"], summary="The target-group mapping: benefits, visitation categories, durations, bands")
async def get_maalgrupper(
    settings: Settings,
    principal: RuleReader,
    version: str | None = Query(None, description="A mapping version (v1, v2); the one new deliveries use when omitted"),
) -> dict:
    try:
        mapping = load_mapping(version or settings.maalgruppe_mapping_version)
    except LookupError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=str(exc)) from None
    return {"current_version": settings.maalgruppe_mapping_version, **mapping.raw}


@router.get("/profiles", tags=["rules"], summary="The column profiles: which headers mean which column")
async def get_profiles(uow: Uow, principal: RuleReader) -> list[dict]:
    return [profile.to_json() for profile in await profiles.list_profiles(uow)]


@router.get("/profiles/{reference}", tags=["rules"], summary="One column profile (name, or name@version)")
async def get_one_profile(uow: Uow, reference: str, principal: RuleReader) -> dict:
    return (await profiles.resolve_profile(uow, reference)).to_json()


@router.post(
    "/profiles",
    tags=["rules"],
    status_code=status.HTTP_201_CREATED,
    summary="Register a column profile (a new version when the name exists); used by uploads at once",
    responses={422: {"description": "ambiguous headers, unknown columns or base"}},
)
async def register_profile(uow: Uow, body: ProfileRegistration, principal: ProfileWriter) -> dict:
    profile = await profiles.register_profile(uow, body, principal.subject)
    return profile.to_json()
