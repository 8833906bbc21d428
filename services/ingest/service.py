"""Ingest's service functions: turn an extract's rows into a stored, pseudonymised delivery and
announce it on the bus, atomically.

One delivery is one database transaction: the delivery row, every citizen (streamed in with
COPY, batch by batch), the population.received events (into the outbox), superseding the
municipality's previous delivery and, for uploads, the job's final status. Nothing is visible
until it commits, and a crash or a rejected delivery leaves nothing behind.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date
from typing import Literal

import sqlalchemy as sa

from services.ingest.config import IngestSettings
from services.ingest.domain.classification import load_mapping
from services.ingest.domain.readers import NumberedRow
from services.ingest.domain.validation import RowError
from services.ingest.models import Citizen, Delivery
from services.ingest.preparation import CITIZEN_COLUMNS, DeliveryPreparer, PreparedBatch
from services.ingest.pseudonymisation import Pseudonymiser
from services.ingest.schemas import DeliveryReport, ExtractRow, RowIssue
from shared.bus import UnitOfWork
from shared.events import PopulationReceived
from shared.runtime import ServiceRuntime

Policy = Literal["accept_valid", "reject_all"]

MAX_REPORTED_ISSUES = 1000  # per kind; the totals are always complete
PROGRESS_INTERVAL_SECONDS = 0.5
CROSS_DELIVERY_MESSAGE = (
    "{masked} is already in another municipality's accepted delivery for this round; a citizen "
    "belongs to one municipality's population (the first delivery keeps them; contact KL if the "
    "citizen has moved)"
)


@dataclass(frozen=True)
class DeliveryRequest:
    round_id: str
    kommunekode: str
    delivered_by: str
    reference_date: date
    policy: Policy
    job_id: uuid.UUID | None = None


@dataclass
class DeliveryTotals:
    """Running counts of a delivery, reported as progress and kept in the final report."""

    rows_read: int = 0
    rows_valid: int = 0  # validated, classified into a maalgruppe and stored
    rows_rejected: int = 0  # rows with errors
    rows_excluded: int = 0  # valid rows outside the survey population (passive, too short, ...)
    errors_total: int = 0
    warnings_total: int = 0
    errors: list[RowError] = field(default_factory=list)
    warnings: list[RowError] = field(default_factory=list)
    exclusions: Counter = field(default_factory=Counter)
    errors_by_column: Counter = field(default_factory=Counter)
    maalgrupper: Counter = field(default_factory=Counter)

    def add(self, batch: PreparedBatch) -> None:
        self.rows_read += batch.rows_read
        self.rows_valid += len(batch.citizens)
        self.rows_rejected += batch.rejected_rows
        self.rows_excluded += sum(batch.exclusions.values())
        self.exclusions.update(batch.exclusions)
        self.errors_total += len(batch.errors)
        self.warnings_total += len(batch.warnings)
        self.errors_by_column.update(error.column or "(row)" for error in batch.errors)
        self.maalgrupper.update(citizen[CITIZEN_COLUMNS.index("maalgruppe")] for citizen in batch.citizens)
        self.errors.extend(batch.errors[: MAX_REPORTED_ISSUES - len(self.errors)])
        self.warnings.extend(batch.warnings[: MAX_REPORTED_ISSUES - len(self.warnings)])

    def report(self, mapping_version: str) -> dict:
        """The report stored with the delivery and the job; JSON, no personal data."""
        return {
            "mapping_version": mapping_version,
            "exclusions": dict(self.exclusions),
            "maalgrupper": dict(self.maalgrupper),
            "errors_total": self.errors_total,
            "errors_by_column": dict(self.errors_by_column),
            "errors": [_issue(error) for error in self.errors],
            "warnings_total": self.warnings_total,
            "warnings": [_issue(warning) for warning in self.warnings],
        }


@dataclass
class DeliveryOutcome:
    status: Literal["accepted", "rejected"]
    totals: DeliveryTotals
    report: dict
    delivery: Delivery | None = None  # None when rejected


ProgressCallback = Callable[[DeliveryTotals], Awaitable[None]]
BeforeCommit = Callable[[UnitOfWork, DeliveryOutcome], Awaitable[None]]


class DeliveryError(Exception):
    """The delivery as a whole cannot be processed (configuration, not the caller's data)."""


def _issue(error: RowError) -> dict:
    return {"row": error.row, "column": error.column, "message": error.message}


def round_lock_key(round_id: str) -> int:
    return int.from_bytes(hashlib.sha256(f"delivery:{round_id}".encode()).digest()[:8], "big", signed=True)


def make_pseudonymiser(settings: IngestSettings, round_id: str) -> Pseudonymiser:
    cpr_key_id = settings.cpr_active_key_id or ""
    contact_key_id = settings.contact_active_key_id or ""
    try:
        return Pseudonymiser(
            pseudonym_key=settings.pseudonym_key_bytes,
            cpr_key=settings.cpr_keyring[cpr_key_id],
            cpr_key_id=cpr_key_id,
            contact_key=settings.contact_keyring[contact_key_id],
            contact_key_id=contact_key_id,
            round_id=round_id,
        )
    except (KeyError, RuntimeError) as exc:
        raise DeliveryError(f"ingest's data keys are not configured ({type(exc).__name__})") from None


async def ingest_delivery(
    runtime: ServiceRuntime,
    settings: IngestSettings,
    request: DeliveryRequest,
    rows: Iterator[NumberedRow],
    *,
    on_progress: ProgressCallback | None = None,
    before_commit: BeforeCommit | None = None,
) -> DeliveryOutcome:
    """Validate, classify and store a delivery from ``rows``; one transaction or nothing.

    ``rows`` is consumed in a worker thread (parsing and validation are CPU work) while the event
    loop copies the previous batch into PostgreSQL, so the two overlap. Deliveries of one round
    are serialised by an advisory lock: "the previous delivery" and "already delivered by another
    municipality" then have one meaning.
    """
    mapping = load_mapping(settings.maalgruppe_mapping_version)
    delivery_id = uuid.uuid4()
    preparer = DeliveryPreparer(
        delivery_id=delivery_id,
        reference_date=request.reference_date,
        mapping=mapping,
        pseudonymiser=make_pseudonymiser(settings, request.round_id),
        batch_rows=settings.ingest_batch_rows,
    )
    totals = DeliveryTotals()
    loop = asyncio.get_running_loop()

    async with runtime.uow() as uow:
        session = uow.session
        await session.execute(sa.select(sa.func.pg_advisory_xact_lock(round_lock_key(request.round_id))))
        previous = (
            await session.execute(
                sa.select(Delivery).where(
                    Delivery.round_id == request.round_id,
                    Delivery.kommunekode == request.kommunekode,
                    Delivery.status == "accepted",
                )
            )
        ).scalar_one_or_none()
        others_delivered = bool(
            await session.scalar(
                sa.select(
                    sa.exists().where(
                        Delivery.round_id == request.round_id,
                        Delivery.kommunekode != request.kommunekode,
                        Delivery.status == "accepted",
                    )
                )
            )
        )
        delivery = Delivery(
            id=delivery_id,
            round_id=request.round_id,
            kommunekode=request.kommunekode,
            delivered_by=request.delivered_by,
            reference_date=request.reference_date,
            status="accepted",
            report={},
            supersedes=previous.id if previous else None,
            mapping_version=mapping.version,
            job_id=request.job_id,
        )
        session.add(delivery)
        await session.flush()  # the citizens' foreign key needs the delivery row
        connection = await session.connection()
        raw = (await connection.get_raw_connection()).driver_connection
        events = _PopulationPublisher(uow, request, delivery_id, delivery.supersedes, settings.event_chunk_size)

        last_progress = 0.0
        pending = loop.run_in_executor(None, preparer.next_batch, rows)
        try:
            while (batch := await pending) is not None:
                # Prepare the next batch in the thread while this one goes to the database.
                pending = loop.run_in_executor(None, preparer.next_batch, rows)
                if others_delivered and batch.citizens:
                    await _reject_cross_delivery_duplicates(raw, request, batch)
                totals.add(batch)
                # Under reject_all one error dooms the delivery: stop writing, keep reading for the report.
                if not (request.policy == "reject_all" and totals.rows_rejected):
                    if batch.citizens:
                        await raw.copy_records_to_table(
                            Citizen.__tablename__,
                            schema_name=Citizen.__table__.schema,
                            columns=CITIZEN_COLUMNS,
                            records=batch.citizens,
                        )
                    events.add(batch.persons)
                    await uow.flush_events()
                if on_progress is not None and time.monotonic() - last_progress >= PROGRESS_INTERVAL_SECONDS:
                    last_progress = time.monotonic()
                    await on_progress(totals)
        finally:
            if not pending.done():  # an error left the thread reading: let it finish first
                await asyncio.wait([pending])
        if on_progress is not None:
            await on_progress(totals)

        report = totals.report(mapping.version)
        if request.policy == "reject_all" and totals.rows_rejected:
            await uow.rollback()
            return DeliveryOutcome(status="rejected", totals=totals, report=report)

        events.finish()
        if previous is not None:
            previous.status = "superseded"
            # The superseded frame's identifiers are no longer needed.
            await session.execute(sa.delete(Citizen).where(Citizen.delivery_id == previous.id))
        delivery.rows_read = totals.rows_read
        delivery.rows_valid = totals.rows_valid
        delivery.rows_rejected = totals.rows_rejected
        delivery.rows_excluded = totals.rows_excluded
        delivery.report = report
        outcome = DeliveryOutcome(status="accepted", totals=totals, report=report, delivery=delivery)
        if before_commit is not None:
            await before_commit(uow, outcome)
        await uow.commit()
        return outcome


async def _reject_cross_delivery_duplicates(raw, request: DeliveryRequest, batch: PreparedBatch) -> None:
    """A citizen already in another municipality's accepted delivery for the round becomes a row
    error here (the earlier delivery keeps them), so no person is in two frames of one round.
    The message does not say which municipality: that would tell one municipality about a
    citizen's case in another."""
    found = await raw.fetch(
        """
        SELECT c.pseudonym FROM ingest.citizen c JOIN ingest.delivery d ON d.id = c.delivery_id
        WHERE c.pseudonym = ANY($1::text[]) AND d.round_id = $2 AND d.kommunekode <> $3 AND d.status = 'accepted'
        """,
        [person["pseudonym"] for person in batch.persons],
        request.round_id,
        request.kommunekode,
    )
    if not found:
        return
    taken = {record["pseudonym"] for record in found}
    drop = {i for i, person in enumerate(batch.persons) if person["pseudonym"] in taken}
    for i in sorted(drop):
        message = CROSS_DELIVERY_MESSAGE.format(masked=batch.masked_cprs[i])
        batch.errors.append(RowError(batch.row_numbers[i], "cpr", message))
    batch.errors.sort(key=lambda error: error.row)
    batch.rejected_rows += len(drop)
    batch.drop(drop)


class _PopulationPublisher:
    """Cuts the delivery's persons into population.received chunks on the unit of work.

    The last full chunk is held back until more persons arrive, so the final chunk (which
    carries ``final``, the chunk count and the person count) is never an empty extra event.
    """

    def __init__(
        self, uow: UnitOfWork, request: DeliveryRequest, delivery_id: uuid.UUID, supersedes: uuid.UUID | None, size: int
    ) -> None:
        self._uow = uow
        self._request = request
        self._delivery_id = delivery_id
        self._supersedes = supersedes
        self._size = size
        self._buffer: list[dict] = []
        self._chunks = 0
        self._persons = 0

    def add(self, persons: Iterable[dict]) -> None:
        for person in persons:
            if len(self._buffer) >= self._size:
                self._emit(final=False)
            self._buffer.append(person)
            self._persons += 1

    def finish(self) -> None:
        self._emit(final=True)

    def _emit(self, *, final: bool) -> None:
        request = self._request
        payload = PopulationReceived.model_validate(
            {
                "round_id": request.round_id,
                "kommunekode": request.kommunekode,
                "delivery_id": self._delivery_id,
                "supersedes": self._supersedes,
                "reference_date": request.reference_date,
                "chunk_no": self._chunks,
                "final": final,
                "chunk_count": self._chunks + 1 if final else None,
                "person_count": self._persons if final else None,
                "persons": self._buffer,
            }
        )
        self._uow.publish(payload, correlation_id=str(self._delivery_id))
        self._chunks += 1
        self._buffer = []


# --- JSON batches (rows in the request body) ------------------------------------------------------


def json_rows(rows: list[ExtractRow]) -> Iterator[NumberedRow]:
    """A JSON batch's rows as the file readers yield them (row numbers from 1)."""
    for number, row in enumerate(rows, start=1):
        yield number, row.model_dump()


def report_for(delivery: Delivery) -> DeliveryReport:
    report = delivery.report or {}
    return DeliveryReport(
        delivery_id=delivery.id,
        round_id=delivery.round_id,
        kommunekode=delivery.kommunekode,
        status=delivery.status,
        rows_read=delivery.rows_read,
        rows_valid=delivery.rows_valid,
        rows_rejected=delivery.rows_rejected,
        rows_excluded=delivery.rows_excluded,
        mapping_version=delivery.mapping_version,
        exclusions=report.get("exclusions", {}),
        maalgrupper=report.get("maalgrupper", {}),
        errors_total=report.get("errors_total", len(report.get("errors", []))),
        errors=[RowIssue(**e) for e in report.get("errors", [])],
        warnings_total=report.get("warnings_total", 0),
        warnings=[RowIssue(**w) for w in report.get("warnings", [])],
        supersedes=delivery.supersedes,
        created_at=delivery.created_at,
    )


async def get_delivery(uow: UnitOfWork, delivery_id: uuid.UUID) -> Delivery | None:
    return await uow.session.get(Delivery, delivery_id)
