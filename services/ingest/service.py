"""Ingest's service functions: turn validated rows into a stored, pseudonymised delivery and
announce it on the bus, atomically."""

from __future__ import annotations

import hashlib
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date

import sqlalchemy as sa

from services.ingest.config import IngestSettings
from services.ingest.domain.cpr import parse_cpr
from services.ingest.domain.errors import IngestDomainError
from services.ingest.models import Citizen, Delivery
from services.ingest.pseudonymisation import encrypt_cpr, pseudonym_for
from services.ingest.schemas import DeliveryReport, ExtractRow, RowIssue
from shared.bus import UnitOfWork
from shared.crypto import ContactDetails, seal_contact
from shared.events import Bands, PopulationPerson, PopulationReceived

# Interim classification until the versioned mapping table lands (see services/ingest/domain).
_INTERIM_MAALGRUPPER = {
    "dagpenge": "dagpenge",
    "sygedagpenge": "sygedagpenge",
    "kontanthjælp - jobparat": "job_og_uddannelsesparate",
    "kontanthjælp - aktivitetsparat": "aktivitetsparate",
    "ressourceforløbsydelse - jobafklaring": "jobafklaring",
}


@dataclass(frozen=True)
class PreparedCitizen:
    row: int
    cpr: str
    maalgruppe: str
    ydelse: str
    bands: Bands
    forskerbeskyttet: bool
    contact: ContactDetails


@dataclass
class Preparation:
    citizens: list[PreparedCitizen]
    errors: list[RowIssue]
    exclusions: Counter
    rows_read: int


def _age_band(age: int) -> str:
    for upper, band in ((29, "18-29"), (39, "30-39"), (49, "40-49"), (59, "50-59")):
        if age <= upper:
            return band
    return "60+"


def _duration_band(months: int) -> str:
    for upper, band in ((6, "0-6 mdr"), (12, "6-12 mdr"), (24, "12-24 mdr")):
        if months < upper:
            return band
    return "24+ mdr"


def prepare_rows(rows: Iterable[ExtractRow], reference_date: date) -> Preparation:
    citizens: list[PreparedCitizen] = []
    errors: list[RowIssue] = []
    exclusions: Counter = Counter()
    seen: set[str] = set()
    rows_read = 0
    for row_no, row in enumerate(rows, start=1):
        rows_read += 1
        try:
            cpr = parse_cpr(row.cpr, reference_date=reference_date)
        except IngestDomainError as exc:
            errors.append(RowIssue(row=row_no, column="cpr", message=str(exc)))
            continue
        if cpr.number in seen:
            errors.append(RowIssue(row=row_no, column="cpr", message=f"{cpr.masked} appears more than once in this delivery"))
            continue
        seen.add(cpr.number)
        if row.passiv:
            exclusions["passive"] += 1
            continue
        maalgruppe = _INTERIM_MAALGRUPPER.get(row.ydelse.strip().lower())
        if maalgruppe is None:
            errors.append(RowIssue(row=row_no, column="ydelse", message=f"unknown benefit {row.ydelse!r}"))
            continue
        months = (reference_date.year - row.overgangsdato.year) * 12 + reference_date.month - row.overgangsdato.month
        citizens.append(
            PreparedCitizen(
                row=row_no,
                cpr=cpr.number,
                maalgruppe=maalgruppe,
                ydelse=row.ydelse,
                bands=Bands(gender=cpr.gender.value, age_band=_age_band(cpr.age_at(reference_date)), duration_band=_duration_band(months)),
                forskerbeskyttet=row.forskerbeskyttet,
                contact=ContactDetails(cpr=cpr.number, name=row.navn, phone_e164=row.telefon),
            )
        )
    return Preparation(citizens=citizens, errors=errors, exclusions=exclusions, rows_read=rows_read)


def _lock_key(round_id: str, kommunekode: str) -> int:
    return int.from_bytes(hashlib.sha256(f"delivery:{round_id}:{kommunekode}".encode()).digest()[:8], "big", signed=True)


def _chunks(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


async def store_delivery(
    uow: UnitOfWork,
    settings: IngestSettings,
    *,
    round_id: str,
    kommunekode: str,
    delivered_by: str,
    reference_date: date,
    preparation: Preparation,
) -> DeliveryReport:
    """Store the delivery, supersede the previous one, publish its population: one transaction."""
    session = uow.session
    # Two deliveries for the same municipality and round are serialised, so "the previous one"
    # is well defined and a re-delivery replaces exactly one predecessor.
    await session.execute(sa.select(sa.func.pg_advisory_xact_lock(_lock_key(round_id, kommunekode))))
    previous = (
        await session.execute(
            sa.select(Delivery).where(
                Delivery.round_id == round_id, Delivery.kommunekode == kommunekode, Delivery.status == "accepted"
            )
        )
    ).scalar_one_or_none()

    delivery = Delivery(
        id=uuid.uuid4(),
        round_id=round_id,
        kommunekode=kommunekode,
        delivered_by=delivered_by,
        reference_date=reference_date,
        status="accepted",
        rows_read=preparation.rows_read,
        rows_valid=len(preparation.citizens),
        rows_rejected=len({e.row for e in preparation.errors}),
        rows_excluded=sum(preparation.exclusions.values()),
        report={
            "errors": [e.model_dump() for e in preparation.errors[:1000]],
            "exclusions": dict(preparation.exclusions),
        },
        supersedes=previous.id if previous else None,
    )
    if previous is not None:
        previous.status = "superseded"
        # The superseded frame's identifiers are no longer needed.
        await session.execute(sa.delete(Citizen).where(Citizen.delivery_id == previous.id))
    session.add(delivery)
    await session.flush()

    cpr_key_id = settings.cpr_active_key_id or ""
    cpr_key = settings.cpr_keyring[cpr_key_id]
    contact_key_id = settings.contact_active_key_id or ""
    contact_key = settings.contact_keyring[contact_key_id]
    pseudonym_key = settings.pseudonym_key_bytes

    people: list[PopulationPerson] = []
    rows = []
    for citizen in preparation.citizens:
        pseudonym = pseudonym_for(citizen.cpr, pseudonym_key)
        rows.append(
            {
                "delivery_id": delivery.id,
                "pseudonym": pseudonym,
                "cpr_ciphertext": encrypt_cpr(citizen.cpr, key=cpr_key, key_id=cpr_key_id),
                "cpr_key_id": cpr_key_id,
                "maalgruppe": citizen.maalgruppe,
                "ydelse": citizen.ydelse,
                "gender": citizen.bands.gender,
                "age_band": citizen.bands.age_band,
                "duration_band": citizen.bands.duration_band,
            }
        )
        people.append(
            PopulationPerson(
                pseudonym=pseudonym,
                maalgruppe=citizen.maalgruppe,
                bands=citizen.bands,
                forskerbeskyttet=citizen.forskerbeskyttet,
                contact=seal_contact(
                    citizen.contact, round_id=round_id, pseudonym=pseudonym, key_id=contact_key_id, key=contact_key
                ),
            )
        )
    if rows:
        await session.execute(sa.insert(Citizen), rows)

    chunks = list(_chunks(people, settings.event_chunk_size)) or [[]]
    for chunk_no, chunk in enumerate(chunks):
        final = chunk_no == len(chunks) - 1
        uow.publish(
            PopulationReceived(
                round_id=round_id,
                kommunekode=kommunekode,
                delivery_id=delivery.id,
                supersedes=delivery.supersedes,
                reference_date=reference_date,
                chunk_no=chunk_no,
                final=final,
                chunk_count=len(chunks) if final else None,
                person_count=len(people) if final else None,
                persons=chunk,
            ),
            correlation_id=str(delivery.id),
        )
    await uow.commit()
    return report_for(delivery)


def report_for(delivery: Delivery) -> DeliveryReport:
    return DeliveryReport(
        delivery_id=delivery.id,
        round_id=delivery.round_id,
        kommunekode=delivery.kommunekode,
        status=delivery.status,
        rows_read=delivery.rows_read,
        rows_valid=delivery.rows_valid,
        rows_rejected=delivery.rows_rejected,
        rows_excluded=delivery.rows_excluded,
        exclusions=delivery.report.get("exclusions", {}),
        errors=[RowIssue(**e) for e in delivery.report.get("errors", [])],
        supersedes=delivery.supersedes,
        created_at=delivery.created_at,
    )


async def get_delivery(uow: UnitOfWork, delivery_id: uuid.UUID) -> Delivery | None:
    return await uow.session.get(Delivery, delivery_id)
