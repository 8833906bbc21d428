"""A job interrupted by a crash (its process died while it ran) is retried from the start, or
failed after too many attempts; either way no half-written delivery exists."""

from __future__ import annotations

import asyncio
import shutil
import uuid

from ingest_helpers import CORPUS, citizens_of_round, ensure_round, fetch, wait_for_job
from services.ingest.config import IngestSettings
from services.ingest.main import create_app
from shared.testing.fixtures import running_app, settings_from_env


async def _insert_stale_job(database_url: str, *, round_id: str, file_path: str | None, attempts: int) -> uuid.UUID:
    job_id = uuid.uuid4()
    await fetch(
        database_url,
        """
        INSERT INTO ingest.extract_job (id, round_id, kommunekode, submitted_by, reference_date, profile, policy,
            file_format, file_path, file_bytes, status, attempts, rows_read, heartbeat_at, started_at)
        VALUES ($1, $2, '101', 'momentum-dev', '2023-08-01', 'standard', 'accept_valid', 'csv', $3, 100,
            'running', $4, 2, now() - interval '1 hour', now() - interval '1 hour')
        """,
        job_id,
        round_id,
        file_path,
        attempts,
    )
    return job_id


async def test_interrupted_jobs_are_retried_or_failed(service_env, dev_issuer, tmp_path):
    settings = settings_from_env(
        IngestSettings, service_env, upload_dir=str(tmp_path / "uploads"), job_stale_after_seconds=1, job_poll_interval_seconds=0.1
    )
    database_url = service_env["DATABASE_URL"]
    token = dev_issuer.mint("momentum-dev", ["extracts:read"], ["101"])
    (tmp_path / "uploads").mkdir()
    retry_file = tmp_path / "uploads" / "retry.upload"
    exhausted_file = tmp_path / "uploads" / "exhausted.upload"
    shutil.copy(CORPUS / "good_cp1252_semicolon.csv", retry_file)
    shutil.copy(CORPUS / "good_cp1252_semicolon.csv", exhausted_file)

    app = create_app(settings)
    async with running_app(app) as client:
        await asyncio.sleep(0.3)  # migrations have run; the worker is polling
        for round_id in ("crash-1", "crash-2", "crash-3"):
            await ensure_round(client, dev_issuer, round_id)
        retried = await _insert_stale_job(database_url, round_id="crash-1", file_path=str(retry_file), attempts=1)
        vanished = await _insert_stale_job(database_url, round_id="crash-2", file_path=str(tmp_path / "gone"), attempts=1)
        exhausted = await _insert_stale_job(database_url, round_id="crash-3", file_path=str(exhausted_file), attempts=2)

        job = await wait_for_job(client, token, str(retried), timeout=30)
        assert job["status"] == "succeeded", job
        assert job["progress"]["rows_valid"] == 4 and job["progress"]["rows_read"] == 4
        for job_id in (vanished, exhausted):
            job = await wait_for_job(client, token, str(job_id), timeout=30)
            assert job["status"] == "failed" and "interrupted" in job["error"]

    assert await citizens_of_round(database_url, "crash-1") == 4
    assert await citizens_of_round(database_url, "crash-2") == 0
    assert await citizens_of_round(database_url, "crash-3") == 0
    assert not retry_file.exists() and not exhausted_file.exists()  # clear-text uploads are deleted
