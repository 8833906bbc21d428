"""What retention and erasure mean in ingest itself (the plumbing is shared.privacy).

A closed round loses every citizen row (CPR ciphertext, pseudonym, background: its deliveries'
partitions are truncated, then dropped by the partition cleanup) and the row-level
error lists of its reports (they name rows and masked birth dates); the counts stay for the
record. Uploaded files are deleted when their job ends; a purge removes any a crash left behind.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import sqlalchemy as sa

from services.ingest.models import AUDIT, Citizen, Delivery, ExtractJob
from services.ingest.partitions import SCHEMA, partition_name
from shared.bus import UnitOfWork
from shared.privacy import PrivacyRules, rows_with_pseudonyms


def _round_deliveries(round_id: str):
    return sa.select(Delivery.id).where(Delivery.round_id == round_id)


async def _empty_partitions(uow: UnitOfWork, round_id: str) -> int:
    """TRUNCATE each of the round's delivery partitions (services/ingest/partitions.py): a
    national round's million rows go at once, without a row's worth of WAL and a dead tuple
    each, and the background cleanup then detaches and drops the emptied tables. Returns the
    rows they held."""
    removed = 0
    for delivery_id in await uow.session.scalars(_round_deliveries(round_id)):
        table = f"{SCHEMA}.{partition_name(delivery_id)}"
        if await uow.session.scalar(sa.select(sa.func.to_regclass(table).is_not(None))):
            removed += await uow.session.scalar(sa.text(f"SELECT count(*) FROM {table}"))
            await uow.session.execute(sa.text(f"TRUNCATE {table}"))
    return removed


async def purge_round(uow: UnitOfWork, round_id: str) -> dict[str, int]:
    emptied = await _empty_partitions(uow, round_id)
    # Whatever of the round is not in a partition of its own goes row by row.
    citizens = await uow.session.execute(sa.delete(Citizen).where(Citizen.delivery_id.in_(_round_deliveries(round_id))))
    reports = await uow.session.execute(
        sa.update(Delivery)
        .where(Delivery.round_id == round_id, Delivery.report.has_key("errors"))
        .values(report=Delivery.report.op("-")("errors"))
    )
    await uow.session.execute(
        sa.update(ExtractJob)
        .where(ExtractJob.round_id == round_id, ExtractJob.report.has_key("errors"))
        .values(report=ExtractJob.report.op("-")("errors"))
    )
    leftover = list(
        await uow.session.scalars(
            sa.select(ExtractJob.file_path).where(ExtractJob.round_id == round_id, ExtractJob.file_path.is_not(None))
        )
    )
    remove_upload_files(leftover)
    await uow.session.execute(
        sa.update(ExtractJob).where(ExtractJob.round_id == round_id, ExtractJob.file_path.is_not(None)).values(file_path=None)
    )
    return {"citizen": emptied + citizens.rowcount, "delivery_report_errors": reports.rowcount, "upload_files": len(leftover)}


async def identifiers_left_in_round(uow: UnitOfWork, round_id: str) -> int:
    citizens = await uow.session.scalar(
        sa.select(sa.func.count()).select_from(Citizen).where(Citizen.delivery_id.in_(_round_deliveries(round_id)))
    )
    reports = await uow.session.scalar(
        sa.select(sa.func.count())
        .select_from(Delivery)
        .where(Delivery.round_id == round_id, Delivery.report.has_key("errors"))
    )
    return citizens + reports


async def erase_citizens(uow: UnitOfWork, pseudonyms: Sequence[str]) -> dict[str, int]:
    result = await uow.session.execute(sa.delete(Citizen).where(Citizen.pseudonym.in_(pseudonyms)))
    return {"citizen": result.rowcount}


def remove_upload_files(paths: Sequence[str]) -> None:
    for path in paths:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


RULES = PrivacyRules(
    service="ingest",
    purge_round=purge_round,
    identifiers_left_in_round=identifiers_left_in_round,
    erase_citizens=erase_citizens,
    rows_left_for_citizens=rows_with_pseudonyms(Citizen),
    audit_table=AUDIT,
)
