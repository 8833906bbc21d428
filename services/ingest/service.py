"""Ingest's service functions: turn an extract's rows into a stored, pseudonymised delivery and
announce it on the bus, atomically.

One delivery is one database transaction: the delivery row, every citizen (streamed in with
COPY, block by block, into the delivery's own partition of ingest.citizen: see
``services.ingest.partitions``), the population.received events (into the population outbox),
superseding the municipality's previous delivery and, for uploads, the job's final status.
Nothing is visible until it commits, and a crash or a rejected delivery leaves nothing behind.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo

import numpy as np
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, asyncpg

from services.ingest import partitions, rounds
from services.ingest.config import IngestSettings
from services.ingest.domain.classification import load_mapping
from services.ingest.domain.profiles import Kolonne
from services.ingest.domain.readers import NumberedRow
from services.ingest.domain.replacement import replacement_refusal
from services.ingest.domain.validation import RowError
from services.ingest.duplicates import RoundMembers, SeenKeys
from services.ingest.events import PopulationChunks
from services.ingest.models import POPULATION_OUTBOX, Delivery, ExtractJob, RoundDefinition
from services.ingest.privacy.models import BlockedCitizen, RoundClosure
from services.ingest.parallel import BlockSettings, ExtractFile, prepared_blocks, worker_count
from services.ingest.preparation import (
    CITIZEN_COLUMNS,
    COPY_HEADER,
    COPY_TRAILER,
    EXCLUDED_BASE,
    EXCLUSION_ORDER,
    UNKNOWN_BENEFIT,
    PreparationSpec,
    PreparedBlock,
    forget,
    masked,
)
from services.ingest.schemas import Classification, DeliveryReport, DeliverySummary, ExtractRow, RowIssue
from shared.bus import UnitOfWork
from shared.db import advisory_key
from shared.events import DeliveryAccepted

Policy = Literal["accept_valid", "reject_all"]

MAX_REPORTED_ISSUES = 1000  # per kind; the totals are always complete
PROGRESS_INTERVAL_SECONDS = 0.5
CROSS_DELIVERY_MESSAGE = (
    "{masked} is already in another municipality's accepted delivery for this round; a citizen "
    "belongs to one municipality's population (the first delivery keeps them; contact KL if the "
    "citizen has moved)"
)


# "The day of the upload" is the Danish calendar day: a date after it is in the future.
DANISH_TIME = ZoneInfo("Europe/Copenhagen")


def upload_day(moment: datetime | None) -> date:
    """The Danish calendar day of an upload (now, when not known)."""
    return (moment or datetime.now(DANISH_TIME)).astimezone(DANISH_TIME).date()


@dataclass(frozen=True)
class DeliveryRequest:
    round_id: str
    kommunekode: str
    delivered_by: str
    reference_date: date
    policy: Policy
    job_id: uuid.UUID | None = None
    today: date | None = None  # the day of the upload (Danish time): later dates are row errors
    dry_run: bool = False  # validate and report in full, store nothing
    confirm_replacement: bool = False  # the caller accepts a delivery that shrinks the frame (domain.replacement)


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
    decisions: Counter = field(default_factory=Counter)  # (benefit, category, maalgruppe) -> citizens
    # Row numbers in the blocks are file lines (or positions in a JSON batch); the data row is the
    # line less the header's (1 for the first row under the header).
    header_row_number: int = 0

    @property
    def maalgrupper(self) -> Counter:
        groups: Counter = Counter()
        for (_, _, maalgruppe), count in self.decisions.items():
            groups[maalgruppe] += count
        return groups

    def add(self, block: PreparedBlock) -> None:
        self.rows_read += block.rows_read
        self.rows_valid += block.citizens
        self.rows_rejected += block.rejected_rows
        self.rows_excluded += sum(block.exclusions.values())
        self.exclusions.update(block.exclusions)
        self.errors_total += len(block.errors)
        self.warnings_total += len(block.warnings)
        self.errors_by_column.update(error.column or "(row)" for error in block.errors)
        self.decisions.update(block.maalgrupper)
        self.errors.extend(block.errors[: MAX_REPORTED_ISSUES - len(self.errors)])
        self.warnings.extend(block.warnings[: MAX_REPORTED_ISSUES - len(self.warnings)])

    def report(self, mapping_version: str) -> dict:
        """The report stored with the delivery and the job; JSON, no personal data."""
        return {
            "mapping_version": mapping_version,
            "exclusions": {reason: count for reason, count in self.exclusions.items() if count},
            "maalgrupper": dict(self.maalgrupper),
            "classifications": [
                {"ydelse": ydelse, "visitationskategori": kategori or None, "maalgruppe": maalgruppe, "citizens": count}
                for (ydelse, kategori, maalgruppe), count in sorted(self.decisions.items())
            ],
            "errors_total": self.errors_total,
            "errors_by_column": dict(self.errors_by_column),
            "errors": [_issue(error, self.header_row_number) for error in self.errors],
            "warnings_total": self.warnings_total,
            "warnings": [_issue(warning, self.header_row_number) for warning in self.warnings],
        }


@dataclass
class DeliveryOutcome:
    status: Literal["accepted", "rejected", "validated"]  # validated: a dry run, nothing stored
    totals: DeliveryTotals
    report: dict
    delivery: Delivery | None = None  # None when rejected
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage (and event counts), for logs and benches


ProgressCallback = Callable[[DeliveryTotals], Awaitable[None]]
BeforeCommit = Callable[[UnitOfWork, DeliveryOutcome], Awaitable[None]]


class DeliveryError(Exception):
    """The delivery as a whole cannot be processed (configuration, or the round is closed), whatever its rows."""


class ReplacementRefused(DeliveryError):
    """The delivery would shrink the municipality's frame (``domain.replacement``) and the caller
    did not confirm it; nothing was stored. Carries the delivery's report."""

    def __init__(self, message: str, totals: DeliveryTotals, report: dict) -> None:
        super().__init__(message)
        self.totals = totals
        self.report = report


class DeliveryRefused(DeliveryError):
    """The round takes no delivery from this municipality now (its phase, or its municipalities)."""


class RoundClosed(DeliveryRefused):
    """The round was closed by an operator and takes no more deliveries: its identifiers are
    purged on the retention clock from the close, and a delivery after the close would outlive
    that purge (the purge runs once)."""


async def ensure_round_open(session, round_id: str, kommunekode: str, *, lock: bool = False) -> RoundDefinition:
    """The round's definition, if it takes a delivery from this municipality (the rule:
    domain.rounds.delivery_refusal); rounds.RoundUnknown or DeliveryRefused otherwise."""
    row, refusal = await rounds.delivery_refusal(session, round_id, kommunekode, lock=lock)
    closure = await session.get(RoundClosure, round_id)
    if closure is not None:
        raise RoundClosed(f"round {round_id} was closed on {closure.closed_at:%Y-%m-%d} and takes no more deliveries")
    if refusal is not None:
        raise DeliveryRefused(refusal)
    return row


def accepted_deliveries(round_id: str) -> sa.Select:
    """The round's accepted deliveries: one a municipality at most (a new one supersedes it)."""
    return sa.select(Delivery).where(Delivery.round_id == round_id, Delivery.status == "accepted")


def accepted_delivery(round_id: str, kommunekode: str) -> sa.Select:
    """The municipality's accepted delivery for the round: its frame."""
    return accepted_deliveries(round_id).where(Delivery.kommunekode == kommunekode)


async def check_round_open(uow: UnitOfWork, round_id: str, kommunekode: str) -> None:
    """Refuse an upload before its file is received (``ensure_round_open``; the job checks again
    when it stores the delivery). Reads only; the transaction ends here, so no connection is
    held while the file arrives."""
    await ensure_round_open(uow.session, round_id, kommunekode)
    await uow.rollback()


async def refuse_empty_replacement(uow: UnitOfWork, round_id: str, kommunekode: str) -> None:
    """A header-only file: refused without running a job (domain.replacement's rule)."""
    previous = await uow.session.scalar(accepted_delivery(round_id, kommunekode).with_only_columns(Delivery.rows_valid))
    raise DeliveryRefused(replacement_refusal(previous, 0))


def _issue(error: RowError, header_row_number: int) -> dict:
    return {
        "row": error.row,
        "line": error.row,
        "data_row": error.row - header_row_number,
        "column": error.column,
        "message": error.message,
    }


def round_lock_key(round_id: str) -> int:
    """The advisory lock that serialises a round's deliveries and its close."""
    return advisory_key(f"delivery:{round_id}")


def preparation_spec(settings: IngestSettings, request: DeliveryRequest, delivery_id: uuid.UUID, mapping_version: str) -> PreparationSpec:
    cpr_key_id = settings.cpr_active_key_id or ""
    contact_key_id = settings.contact_active_key_id or ""
    try:
        return PreparationSpec(
            token=uuid.uuid4().hex,
            delivery_id=delivery_id,
            reference_date=request.reference_date,
            mapping_version=mapping_version,
            round_id=request.round_id,
            pseudonym_key=settings.pseudonym_key_bytes,
            cpr_key=settings.cpr_keyring[cpr_key_id],
            cpr_key_id=cpr_key_id,
            contact_key=settings.contact_keyring[contact_key_id],
            contact_key_id=contact_key_id,
            today=request.today,
        )
    except (KeyError, RuntimeError) as exc:
        raise DeliveryError(f"ingest's data keys are not configured ({type(exc).__name__})") from None


@dataclass
class _Load:
    """A delivery being written, under the round's lock: its row, what it replaces, where its
    citizens and events go, and what the round already holds."""

    delivery: Delivery
    previous: Delivery | None
    spec: PreparationSpec
    raw: Any  # the transaction's asyncpg connection: COPY and the bulk outbox
    citizen_table: str
    others: list[uuid.UUID]  # other municipalities' accepted deliveries of the round
    members: RoundMembers | None  # their citizens' hash prefixes (None: no other delivery)
    objections_stand: bool  # someone objected (a privacy request): blocks are checked
    chunks: PopulationChunks


async def ingest_delivery(
    uow: UnitOfWork,
    settings: IngestSettings,
    request: DeliveryRequest,
    rows: Iterator[NumberedRow] | ExtractFile,
    *,
    on_progress: ProgressCallback | None = None,
    before_commit: BeforeCommit | None = None,
) -> DeliveryOutcome:
    """Validate, classify and store a delivery from ``rows``; one transaction (``uow``'s,
    committed here) or nothing.

    The rows are prepared in blocks on every core (``services.ingest.parallel``) while the event
    loop copies earlier blocks into PostgreSQL and writes their events, so the stages overlap.
    Deliveries of one round are serialised by an advisory lock: "the previous delivery" and
    "already delivered by another municipality" then have one meaning.
    """
    timings: Counter = Counter()
    started = time.perf_counter()
    totals = DeliveryTotals()
    load = await _open_delivery(uow, settings, request)
    timings["setup"] += time.perf_counter() - started
    await _load_rows(load, settings, request, rows, totals, timings, on_progress)

    report = totals.report(load.delivery.mapping_version)
    if request.policy == "reject_all" and totals.rows_rejected:
        await uow.rollback()
        return DeliveryOutcome(status="rejected", totals=totals, report=report, timings=_seconds(timings, started))
    refusal = None if request.confirm_replacement else replacement_refusal(
        load.previous.rows_valid if load.previous is not None else None, totals.rows_valid
    )
    if request.dry_run:
        await uow.rollback()
        if refusal is not None:
            report["replacement_refused"] = refusal  # what a real delivery would be told
        return DeliveryOutcome(status="validated", totals=totals, report=report, timings=_seconds(timings, started))
    if refusal is not None:
        await uow.rollback()
        raise ReplacementRefused(refusal, totals, report)
    outcome = await _accept(uow, load, request, totals, report, timings, before_commit)
    outcome.timings = _seconds(timings, started)
    outcome.timings["events"] = load.chunks.chunks
    outcome.timings["event_bytes"] = load.chunks.bytes_written
    return outcome


async def _open_delivery(uow: UnitOfWork, settings: IngestSettings, request: DeliveryRequest) -> _Load:
    """Take the round's lock, check the round, and start the delivery: its row, its loading
    table, its event chunks, and what the round already holds."""
    session = uow.session
    await session.execute(sa.select(sa.func.pg_advisory_xact_lock(round_lock_key(request.round_id))))
    # Under the round's lock, which closing a round takes too: a delivery either commits
    # before the close or sees it. The round's mapping classifies its citizens.
    definition = await ensure_round_open(session, request.round_id, request.kommunekode)
    mapping = load_mapping(definition.maalgruppe_mapping_version)
    delivery_id = uuid.uuid4()
    spec = preparation_spec(settings, request, delivery_id, mapping.version)
    previous = (await session.execute(accepted_delivery(request.round_id, request.kommunekode))).scalar_one_or_none()
    # Citizens who objected (privacy requests) never enter a frame again.
    objections_stand = bool(await session.scalar(sa.select(sa.exists().where(BlockedCitizen.pseudonym.is_not(None)))))
    # Other municipalities' accepted deliveries of the round (stable while the lock is held).
    others = list(
        await session.scalars(
            accepted_deliveries(request.round_id)
            .where(Delivery.kommunekode != request.kommunekode)
            .with_only_columns(Delivery.id)
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
    await session.flush()
    connection = await session.connection()
    raw = (await connection.get_raw_connection()).driver_connection
    return _Load(
        delivery=delivery,
        previous=previous,
        spec=spec,
        raw=raw,
        citizen_table=await partitions.create_loading_table(raw, delivery_id),
        others=others,
        members=await RoundMembers.load(raw, others) if others else None,
        objections_stand=objections_stand,
        chunks=PopulationChunks(
            raw,
            POPULATION_OUTBOX.fullname,
            source=settings.service_name,
            round_id=request.round_id,
            kommunekode=request.kommunekode,
            delivery_id=delivery_id,
            supersedes=delivery.supersedes,
            reference_date=request.reference_date,
            size=settings.event_chunk_size,
            max_bytes=settings.event_chunk_max_bytes,
        ),
    )


async def _load_rows(
    load: _Load,
    settings: IngestSettings,
    request: DeliveryRequest,
    rows: Iterator[NumberedRow] | ExtractFile,
    totals: DeliveryTotals,
    timings: Counter,
    on_progress: ProgressCallback | None,
) -> None:
    """Prepare the rows block by block, check each block against the delivery and the round,
    count it, and copy its citizens and events in (a dry run, and a reject_all delivery once a
    row has an error, read on for the report and write nothing)."""
    block_settings = BlockSettings(
        block_bytes=settings.ingest_block_bytes,
        block_rows=settings.ingest_batch_rows,
        workers=worker_count(settings.ingest_workers),
        parallel_min_bytes=settings.ingest_parallel_min_bytes,
    )
    seen = SeenKeys()
    last_progress = 0.0

    def on_header(row_number: int) -> None:
        totals.header_row_number = row_number

    blocks = prepared_blocks(rows, load.spec, block_settings, on_header)
    writes = not request.dry_run
    try:
        while True:
            mark = time.perf_counter()
            block = await anext(blocks, None)
            now = time.perf_counter()
            timings["wait_for_blocks"] += now - mark
            if block is None:
                break
            await _check_block(load, block, seen)
            totals.add(block)
            mark = time.perf_counter()
            timings["merge"] += mark - now
            if request.policy == "reject_all" and totals.rows_rejected:
                writes = False
            if writes:
                await _write_block(load, block, timings)
            if on_progress is not None and time.monotonic() - last_progress >= PROGRESS_INTERVAL_SECONDS:
                last_progress = time.monotonic()
                await on_progress(totals)
    finally:
        await blocks.aclose()
        forget(load.spec)
    if on_progress is not None:
        await on_progress(totals)


async def _check_block(load: _Load, block: PreparedBlock, seen: SeenKeys) -> None:
    """The rules across rows: a CPR number once in the delivery, no objector, no citizen of
    another municipality's delivery of the round."""
    _drop_duplicates(block, seen)
    if load.objections_stand and block.citizens:
        await _exclude_objectors(load.raw, block)
    if load.members is not None and block.citizens:
        await _reject_cross_delivery_duplicates(load.raw, load.others, load.members, block)


async def _write_block(load: _Load, block: PreparedBlock, timings: Counter) -> None:
    mark = time.perf_counter()
    if block.citizens:
        await load.raw.copy_to_table(
            load.citizen_table,
            schema_name=partitions.SCHEMA,
            columns=CITIZEN_COLUMNS,
            # a buffer, not bytes: asyncpg would take bytes for a file name
            source=memoryview(b"".join((COPY_HEADER, block.copy_data, COPY_TRAILER))),
            format="binary",
        )
    now = time.perf_counter()
    timings["copy_citizens"] += now - mark
    await load.chunks.add(block.persons_data, block.person_offsets)
    timings["write_events"] += time.perf_counter() - now


async def _accept(
    uow: UnitOfWork,
    load: _Load,
    request: DeliveryRequest,
    totals: DeliveryTotals,
    report: dict,
    timings: Counter,
    before_commit: BeforeCommit | None,
) -> DeliveryOutcome:
    """Store the delivery: its last events, its citizens' partition in place of the previous
    delivery's, its counts, the round's phase and the delivery.accepted event; commit."""
    mark = time.perf_counter()
    await load.chunks.finish()
    uow.events_written()  # the population.received chunks, in the bulk outbox: wake its relay at commit
    timings["write_events"] += time.perf_counter() - mark
    mark = time.perf_counter()
    delivery, previous = load.delivery, load.previous
    if previous is not None:
        previous.status = "superseded"
        # The superseded frame's identifiers are no longer needed.
        await partitions.empty(load.raw, previous.id)
    await partitions.attach(load.raw, delivery.id)
    timings["attach_citizens"] += time.perf_counter() - mark
    mark = time.perf_counter()
    for name, count in row_counts(totals).items():
        setattr(delivery, name, count)
    delivery.report = report
    outcome = DeliveryOutcome(status="accepted", totals=totals, report=report, delivery=delivery)
    # The phase may have moved while the file was read (the draw): checked again, briefly
    # locked; the first accepted delivery starts collecting extracts.
    await ensure_round_open(uow.session, request.round_id, request.kommunekode, lock=True)
    await rounds.advance(uow, request.round_id, "first_delivery", actor=request.delivered_by)
    uow.publish(delivery_accepted(delivery, totals))  # counts only, for the round's overview
    if before_commit is not None:
        await before_commit(uow, outcome)
    await uow.commit()  # wakes the relays, the bulk outbox's among them
    timings["commit"] += time.perf_counter() - mark
    return outcome


def delivery_accepted(delivery: Delivery, totals: DeliveryTotals) -> DeliveryAccepted:
    """The accepted delivery's counts (no row, no person), for analytics' round overview."""
    return DeliveryAccepted(
        round_id=delivery.round_id,
        kommunekode=delivery.kommunekode,
        delivery_id=delivery.id,
        supersedes=delivery.supersedes,
        delivered_by=delivery.delivered_by,
        **row_counts(totals),
        exclusions={reason: n for reason, n in totals.exclusions.items() if n},
        maalgrupper=dict(totals.maalgrupper),
        accepted_at=datetime.now(UTC),
    )


def _seconds(timings: Counter, started: float) -> dict[str, float]:
    result = {stage: round(seconds, 3) for stage, seconds in timings.items()}
    result["total"] = round(time.perf_counter() - started, 3)
    return result


def _drop_duplicates(block: PreparedBlock, seen: SeenKeys) -> None:
    """Later copies of a CPR number in the delivery become row errors (the first row keeps it)."""
    rows = block.valid_rows
    found = seen.check(block.valid_digests, 32, np.frombuffer(rows, dtype=np.int32) if len(rows) else np.empty(0, np.int32))
    if not found:
        return
    dropped_rows = {rows[index] for index in found}
    drop_citizens = set()
    for index in found:
        outcome = block.valid_outcome[index]
        if outcome >= 0:
            drop_citizens.add(outcome)
        elif outcome == UNKNOWN_BENEFIT:
            block.rejected_rows -= 1  # its benefit error gives way to the duplicate error below
        else:
            block.exclusions[EXCLUSION_ORDER[EXCLUDED_BASE - outcome].value] -= 1
    # A duplicate row gets only the duplicate error: the first row is the one the citizen keeps.
    benefit_columns = (Kolonne.YDELSE.value, Kolonne.VISITATIONSKATEGORI.value)
    block.errors = [e for e in block.errors if not (e.row in dropped_rows and e.column in benefit_columns)]
    block.warnings = [w for w in block.warnings if w.row not in dropped_rows]
    for index, first_row in found.items():
        date_part = block.valid_date_parts[6 * index : 6 * index + 6]
        message = f"{masked(date_part)} appears more than once in the delivery (first in row {first_row})"
        block.errors.append(RowError(rows[index], Kolonne.CPR.value, message))
    block.errors.sort(key=lambda error: error.row)
    block.rejected_rows += len(found)
    block.drop_citizens(drop_citizens)


# Which of the given citizens objected (ingest.blocked_citizen): written with the model, run on
# the block loop's asyncpg connection ($1: the pseudonyms as text[]).
OBJECTED_SQL = str(
    sa.select(BlockedCitizen.pseudonym)
    .where(BlockedCitizen.pseudonym == sa.any_(sa.bindparam("pseudonyms", type_=ARRAY(sa.Text))))
    .compile(dialect=asyncpg.dialect())
)


async def _exclude_objectors(raw, block: PreparedBlock) -> None:
    """Citizens who objected to the survey (ingest's block list) are excluded, reason
    ``objection``: counted in the report like every exclusion, never stored or published."""
    digests = block.valid_digests
    included = [(index, outcome) for index, outcome in enumerate(block.valid_outcome) if outcome >= 0]
    pseudonyms = [digests[32 * index : 32 * index + 32].hex() for index, _ in included]
    found = await raw.fetch(OBJECTED_SQL, pseudonyms)
    if not found:
        return
    blocked = {record["pseudonym"] for record in found}
    drop = {citizen for (_, citizen), pseudonym in zip(included, pseudonyms, strict=True) if pseudonym in blocked}
    block.exclusions["objection"] += len(drop)
    block.drop_citizens(drop)


async def _reject_cross_delivery_duplicates(
    raw, others: list[uuid.UUID], members: RoundMembers, block: PreparedBlock
) -> None:
    """A citizen already in another municipality's accepted delivery for the round becomes a row
    error here (the earlier delivery keeps them), so no person is in two frames of one round.
    The message does not say which municipality: that would tell one municipality about a
    citizen's case in another."""
    digests = block.valid_digests
    citizen_of = {index: outcome for index, outcome in enumerate(block.valid_outcome) if outcome >= 0}
    # Rows whose keyed hash starts like a member's are candidates, confirmed here exactly.
    candidates = [(index, citizen_of[index]) for index in members.may_contain(digests, 32, list(citizen_of))]
    if not candidates:
        return
    pseudonyms = [digests[32 * index : 32 * index + 32].hex() for index, _ in candidates]
    found = await raw.fetch(
        partitions.citizens_of(others, "pseudonym") + " AND pseudonym = ANY($1::text[])",
        pseudonyms,
    )
    if not found:
        return
    taken = {record["pseudonym"] for record in found}
    drop = set()
    for (index, citizen), pseudonym in zip(candidates, pseudonyms, strict=True):
        if pseudonym in taken:
            drop.add(citizen)
            date_part = block.valid_date_parts[6 * index : 6 * index + 6]
            block.errors.append(RowError(block.valid_rows[index], "cpr", CROSS_DELIVERY_MESSAGE.format(masked=masked(date_part))))
    block.errors.sort(key=lambda error: error.row)
    block.rejected_rows += len(drop)
    block.drop_citizens(drop)


# --- JSON batches (rows in the request body) ------------------------------------------------------


class BatchTooLarge(ValueError):
    """More rows than a JSON batch may hold: a bigger extract is uploaded as a file."""


class DeliveryRejected(Exception):
    """A reject_all delivery with a row error: nothing was stored. Carries the delivery's report."""

    def __init__(self, message: str, report: dict) -> None:
        super().__init__(message)
        self.report = report


async def deliver_batch(uow: UnitOfWork, settings: IngestSettings, request: DeliveryRequest, rows: list[ExtractRow]) -> DeliveryReport:
    """A JSON batch as a delivery (``ingest_delivery``): the stored delivery's report, or, for a
    dry run, what it would be (status validated, nothing stored)."""
    if len(rows) > settings.json_batch_max_rows:
        raise BatchTooLarge(
            f"a JSON batch holds at most {settings.json_batch_max_rows:,} rows; upload bigger extracts as a file"
        )
    outcome = await ingest_delivery(uow, settings, request, json_rows(rows))
    if outcome.status == "validated":
        return dry_run_report(request, outcome)
    if outcome.delivery is None:
        raise DeliveryRejected(
            f"delivery rejected: {outcome.totals.rows_rejected} row(s) with errors and policy reject_all", outcome.report
        )
    return report_for(outcome.delivery)


def json_rows(rows: list[ExtractRow]) -> Iterator[NumberedRow]:
    """A JSON batch's rows as the file readers yield them (row numbers from 1)."""
    for number, row in enumerate(rows, start=1):
        yield number, row.model_dump()


# A delivery's four counts, by the same names on its totals, its row, its job and every answer.
ROW_COUNTS = ("rows_read", "rows_valid", "rows_rejected", "rows_excluded")


def row_counts(source: DeliveryTotals | Delivery | ExtractJob) -> dict[str, int]:
    return {name: getattr(source, name) for name in ROW_COUNTS}


def report_parts(report: dict) -> dict:
    """A stored delivery report (``DeliveryTotals.report``) as the delivery's and the job's
    answers show it; an older or purged report lacks parts and answers them empty."""
    errors = report.get("errors", [])
    return {
        "mapping_version": report.get("mapping_version"),
        "exclusions": report.get("exclusions", {}),
        "maalgrupper": report.get("maalgrupper", {}),
        "classifications": [Classification(**c) for c in report.get("classifications", [])],
        "replacement_refused": report.get("replacement_refused"),
        "errors_total": report.get("errors_total", len(errors)),
        "errors": [RowIssue(**e) for e in errors],
        "warnings_total": report.get("warnings_total", 0),
        "warnings": [RowIssue(**w) for w in report.get("warnings", [])],
    }


def report_for(delivery: Delivery) -> DeliveryReport:
    return DeliveryReport(
        **row_counts(delivery),
        **{**report_parts(delivery.report or {}), "mapping_version": delivery.mapping_version},
        delivery_id=delivery.id,
        round_id=delivery.round_id,
        kommunekode=delivery.kommunekode,
        status=delivery.status,
        supersedes=delivery.supersedes,
        created_at=delivery.created_at,
    )


def dry_run_report(request: DeliveryRequest, outcome: DeliveryOutcome) -> DeliveryReport:
    """A dry run's report: what a delivery of these rows would be, with nothing stored."""
    return DeliveryReport(
        **row_counts(outcome.totals),
        **report_parts(outcome.report),
        delivery_id=None,
        round_id=request.round_id,
        kommunekode=request.kommunekode,
        status="validated",
    )


async def delivery_report(uow: UnitOfWork, delivery_id: uuid.UUID) -> DeliveryReport | None:
    """A delivery's report, read inside the unit of work (its attributes expire when it ends)."""
    delivery = await uow.session.get(Delivery, delivery_id)
    return report_for(delivery) if delivery is not None else None


async def list_deliveries(uow: UnitOfWork, round_id: str) -> list[DeliverySummary]:
    """A round's deliveries of every municipality, newest first, with the uploaded file's name."""
    rows = await uow.session.execute(
        sa.select(Delivery, ExtractJob.file_name)
        .outerjoin(ExtractJob, ExtractJob.id == Delivery.job_id)
        .where(Delivery.round_id == round_id)
        .order_by(Delivery.created_at.desc())
    )
    return [
        DeliverySummary(
            delivery_id=delivery.id,
            kommunekode=delivery.kommunekode,
            delivered_by=delivery.delivered_by,
            status=delivery.status,
            job_id=delivery.job_id,
            file_name=file_name,
            **row_counts(delivery),
            mapping_version=delivery.mapping_version,
            supersedes=delivery.supersedes,
            created_at=delivery.created_at,
        )
        for delivery, file_name in rows
    ]
