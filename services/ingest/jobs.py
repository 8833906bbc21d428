"""Upload jobs: an extract file is saved, checked, queued, and processed in the background.

The job table is the queue. Any ingest replica may claim a queued job (``FOR UPDATE SKIP
LOCKED``); progress writes double as a heartbeat, and a running job whose heartbeat stops (its
process crashed) is queued again, or failed after ``job_max_attempts``. Re-running from the
start is always safe: a delivery commits in one transaction together with its job's final
status, so an interrupted attempt left nothing behind.
"""

from __future__ import annotations

import asyncio
import logging
import os
import tempfile
import uuid
from collections.abc import AsyncIterator
from datetime import date
from pathlib import Path

import sqlalchemy as sa

from services.ingest import rounds, service
from services.ingest.config import IngestSettings
from services.ingest.domain.errors import ExtractFormatError
from services.ingest.domain.profiles import ColumnProfile, from_spec, get_profile
from services.ingest.domain.readers import ExtractFormat, open_extract
from services.ingest.parallel import ExtractFile
from services.ingest.models import ExtractJob
from services.ingest.parallel import shutdown_pool, warm_pool
from services.ingest.schemas import JobProgress, JobReport, JobSummary
from shared.bus import UnitOfWork
from shared.runtime import ServiceRuntime

logger = logging.getLogger(__name__)

UPLOAD_CHUNK_BYTES = 1024 * 1024
_wakeups: dict[int, asyncio.Event] = {}  # per runtime: an upload wakes the worker at once


class UploadTooLarge(Exception):
    pass


class JobLost(Exception):
    """Another worker took the job over (ours was presumed crashed): our result must not commit."""


# --- receiving a file -------------------------------------------------------------------------------


async def save_upload(chunks: AsyncIterator[bytes], directory: str, max_bytes: int) -> tuple[Path, int]:
    """Stream the upload to a private file; never holds more than one chunk in memory."""
    Path(directory).mkdir(parents=True, exist_ok=True, mode=0o700)
    handle, name = tempfile.mkstemp(prefix="extract-", suffix=".upload", dir=directory)  # mode 0600
    path, size = Path(name), 0
    try:
        with os.fdopen(handle, "wb") as file:
            async for chunk in chunks:
                size += len(chunk)
                if size > max_bytes:
                    raise UploadTooLarge(f"the file is larger than {max_bytes:,} bytes")
                file.write(chunk)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return path, size


def inspect_upload(path: Path, profile: ColumnProfile | str) -> tuple[ExtractFormat, bool]:
    """Open the extract and find its header, so an unreadable file is refused at once (4xx)
    rather than queued: its format, and whether any data row follows the header. Raises
    ``ExtractFormatError`` with what is wrong."""
    with open_extract(path, profile) as reader:
        has_rows = next(iter(reader), None) is not None
        return reader.format, has_rows


async def create_job(
    uow: UnitOfWork,
    runtime: ServiceRuntime,
    *,
    round_id: str,
    kommunekode: str,
    submitted_by: str,
    reference_date: date,
    profile: ColumnProfile,
    policy: str,
    file_format: ExtractFormat,
    path: Path,
    size: int,
    dry_run: bool = False,
    confirm_replacement: bool = False,
    file_name: str | None = None,
) -> ExtractJob:
    """Queue the saved upload as a job and commit; the runtime's worker wakes for it at once."""
    job = ExtractJob(
        profile_spec=profile.to_spec(),
        dry_run=dry_run,
        confirm_replacement=confirm_replacement,
        file_name=file_name,
        id=uuid.uuid4(),
        round_id=round_id,
        kommunekode=kommunekode,
        submitted_by=submitted_by,
        reference_date=reference_date,
        profile=profile.reference,
        policy=policy,
        file_format=file_format.value,
        file_path=str(path),
        file_bytes=size,
        status="queued",
        attempts=0,
        report={},
    )
    uow.session.add(job)
    await uow.commit()
    wake_worker(runtime)
    return job


async def get_job(uow: UnitOfWork, job_id: uuid.UUID) -> ExtractJob | None:
    """The job, detached: it outlives the unit of work (whose end rolls back and would expire it)."""
    job = await uow.session.get(ExtractJob, job_id)
    if job is not None:
        uow.session.expunge(job)
    return job


def job_summary(job: ExtractJob) -> JobSummary:
    return JobSummary(
        job_id=job.id,
        kommunekode=job.kommunekode,
        submitted_by=job.submitted_by,
        file_name=job.file_name,
        file_format=job.file_format,
        file_bytes=job.file_bytes,
        profile=job.profile,
        dry_run=bool(job.dry_run),
        status=job.status,
        progress=JobProgress(**service.row_counts(job)),
        error=job.error,
        delivery_id=job.delivery_id,
        created_at=job.created_at,
        finished_at=job.finished_at,
    )


def job_report(job: ExtractJob) -> JobReport:
    """The summary, with the round, the policy and, once the job has ended, its delivery's report."""
    report = job.report or {}
    return JobReport(
        **job_summary(job).model_dump(),
        **service.report_parts(report),
        round_id=job.round_id,
        policy=job.policy,
        started_at=job.started_at,
        supersedes=report.get("supersedes"),
        errors_by_column=report.get("errors_by_column", {}),
    )


async def list_jobs(uow: UnitOfWork, round_id: str) -> list[JobSummary]:
    """A round's upload jobs, newest first."""
    jobs = await uow.session.scalars(
        sa.select(ExtractJob).where(ExtractJob.round_id == round_id).order_by(ExtractJob.created_at.desc())
    )
    return [job_summary(job) for job in jobs]


# --- the worker -------------------------------------------------------------------------------------


def wake_worker(runtime: ServiceRuntime) -> None:
    event = _wakeups.get(id(runtime))
    if event is not None:
        event.set()


async def run_worker(runtime: ServiceRuntime) -> None:
    """Background loop (a ServiceRuntime worker): recover stale jobs, then run queued ones."""
    settings: IngestSettings = runtime.settings  # type: ignore[assignment]
    wakeup = _wakeups.setdefault(id(runtime), asyncio.Event())
    if settings.ingest_prewarm_workers:
        # Worker processes for big CSV files start now, so the first national delivery does not
        # wait for them (their imports take seconds); small files never use them.
        warm_pool(settings.ingest_workers)
    try:
        while True:
            await recover_stale_jobs(runtime, settings)
            while (claimed := await claim_next_job(runtime)) is not None:
                await run_job(runtime, settings, *claimed)
            wakeup.clear()
            try:
                async with asyncio.timeout(settings.job_poll_interval_seconds):  # not wait_for: see shared.bus.outbox
                    await wakeup.wait()
            except TimeoutError:
                pass
    finally:
        _wakeups.pop(id(runtime), None)
        shutdown_pool()


async def claim_next_job(runtime: ServiceRuntime) -> tuple[uuid.UUID, int] | None:
    """Mark the oldest queued job running for us; returns (job id, attempt number)."""
    j = ExtractJob.__table__
    oldest_queued = (
        sa.select(j.c.id).where(j.c.status == "queued").order_by(j.c.created_at).limit(1).with_for_update(skip_locked=True)
    )
    async with runtime.uow() as uow:
        row = (
            await uow.session.execute(
                sa.update(j)
                .where(j.c.id == oldest_queued.scalar_subquery())
                .values(status="running", attempts=j.c.attempts + 1, started_at=sa.func.now(), heartbeat_at=sa.func.now())
                .returning(j.c.id, j.c.attempts)
            )
        ).first()
        await uow.commit()
    return (row.id, row.attempts) if row else None


async def recover_stale_jobs(runtime: ServiceRuntime, settings: IngestSettings) -> None:
    """Running jobs whose heartbeat stopped were interrupted by a crash: retry or fail them."""
    j = ExtractJob.__table__
    stale = sa.and_(
        j.c.status == "running",
        j.c.heartbeat_at < sa.func.now() - sa.func.make_interval(0, 0, 0, 0, 0, 0, settings.job_stale_after_seconds),
    )
    async with runtime.uow() as uow:
        rows = (await uow.session.execute(sa.select(j.c.id, j.c.attempts, j.c.file_path).where(stale).with_for_update(skip_locked=True))).all()
        for row in rows:
            file_there = row.file_path is not None and Path(row.file_path).exists()
            if file_there and row.attempts < settings.job_max_attempts:
                values = {"status": "queued", **dict.fromkeys(service.ROW_COUNTS, 0)}
            else:
                values = {
                    "status": "failed",
                    "error": "the job was interrupted (the service stopped while it ran) and nothing was stored; upload the file again",
                    "finished_at": sa.func.now(),
                }
            await uow.session.execute(sa.update(j).where(j.c.id == row.id).values(**values))
            logger.warning("recovered an interrupted extract job", extra={"fields": {"job_id": str(row.id), "to": values["status"]}})
        await uow.commit()
    for row in rows:
        if row.file_path and row.attempts >= settings.job_max_attempts:
            Path(row.file_path).unlink(missing_ok=True)


async def run_job(runtime: ServiceRuntime, settings: IngestSettings, job_id: uuid.UUID, attempt: int) -> None:
    async with runtime.uow() as uow:
        job = await get_job(uow, job_id)
    assert job is not None
    j = ExtractJob.__table__
    ours = sa.and_(j.c.id == job_id, j.c.status == "running", j.c.attempts == attempt)
    logger.info("extract job started", extra={"fields": {"job_id": str(job_id), "attempt": attempt}})
    outcome = None
    try:
        outcome = await _deliver(runtime, settings, job, ours)
    except JobLost:
        logger.warning("extract job was taken over by another worker", extra={"fields": {"job_id": str(job_id)}})
        return
    except service.ReplacementRefused as exc:
        await _finish(runtime, ours, status="rejected", report=exc.report, error=str(exc), **service.row_counts(exc.totals))
    except (ExtractFormatError, service.DeliveryError, rounds.RoundUnknown) as exc:
        # The message names what is wrong with the file and never echoes its contents.
        await _finish(runtime, ours, status="failed", error=str(exc))
    except Exception as exc:
        logger.exception("extract job failed", extra={"fields": {"job_id": str(job_id)}})
        await _finish(runtime, ours, status="failed", error=f"internal error while processing the file ({type(exc).__name__})")
    else:
        if outcome.status == "validated":
            await _finish(runtime, ours, status="validated", report=outcome.report, **service.row_counts(outcome.totals))
        elif outcome.status == "rejected":
            await _finish(
                runtime, ours, status="rejected", report=outcome.report, error=(
                    f"delivery rejected: {outcome.totals.rows_rejected} row(s) with errors and policy reject_all; nothing was stored"
                ), **service.row_counts(outcome.totals),
            )
    # The file holds CPR numbers in clear: it goes as soon as the job has an outcome.
    if job.file_path:
        Path(job.file_path).unlink(missing_ok=True)
    fields = {"job_id": str(job_id)}
    if outcome is not None:
        # Seconds per stage (no personal data): where a big delivery's time went.
        fields["timings"] = outcome.timings
    logger.info("extract job ended", extra={"fields": fields})


async def _deliver(runtime: ServiceRuntime, settings: IngestSettings, job: ExtractJob, ours) -> service.DeliveryOutcome:
    """The job's file as a delivery; progress and the job's end are written only while the job
    is still ``ours`` (JobLost otherwise: the delivery does not commit)."""
    request = service.DeliveryRequest(
        round_id=job.round_id,
        kommunekode=job.kommunekode,
        delivered_by=job.submitted_by,
        reference_date=job.reference_date,
        policy=job.policy,  # type: ignore[arg-type]
        job_id=job.id,
        today=service.upload_day(job.created_at),
        dry_run=bool(job.dry_run),
        confirm_replacement=bool(job.confirm_replacement),
    )
    j = ExtractJob.__table__

    async def on_progress(totals: service.DeliveryTotals) -> None:
        async with runtime.uow() as uow:  # its own short transaction, so readers see it at once
            await uow.session.execute(sa.update(j).where(ours).values(heartbeat_at=sa.func.now(), **service.row_counts(totals)))
            await uow.commit()

    async def before_commit(uow: UnitOfWork, outcome: service.DeliveryOutcome) -> None:
        assert outcome.delivery is not None
        result = await uow.session.execute(
            sa.update(j)
            .where(ours)
            .values(
                status="succeeded",
                delivery_id=outcome.delivery.id,
                report={**outcome.report, "supersedes": str(outcome.delivery.supersedes) if outcome.delivery.supersedes else None},
                finished_at=sa.func.now(),
                file_path=None,
                **service.row_counts(outcome.totals),
            )
        )
        if result.rowcount != 1:
            raise JobLost()

    if not job.file_path or not Path(job.file_path).exists():
        raise ExtractFormatError("the uploaded file is no longer available")
    profile = from_spec(job.profile_spec) if job.profile_spec else get_profile(job.profile)
    async with runtime.uow() as uow:
        return await service.ingest_delivery(
            uow, settings, request, ExtractFile(job.file_path, profile), on_progress=on_progress, before_commit=before_commit
        )


async def _finish(runtime: ServiceRuntime, ours, *, status: str, error: str | None = None, report: dict | None = None, **counts) -> None:
    j = ExtractJob.__table__
    values = {"status": status, "error": error, "finished_at": sa.func.now(), "file_path": None, **counts}
    if report is not None:
        values["report"] = report
    async with runtime.uow() as uow:
        await uow.session.execute(sa.update(j).where(ours).values(**values))
        await uow.commit()
