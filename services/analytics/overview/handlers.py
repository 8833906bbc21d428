"""The overview's event handlers: keep the latest of each source's snapshot of a round.

Idempotent by construction, not only by the consumer's processed-event mark: round.defined is
kept by highest revision, a delivery by its id, and a progress snapshot only when it is later
(``as_of``) than the one held, so a replay, a duplicate or an older snapshot arriving late
changes nothing."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert

from services.analytics.overview.models import OverviewDelivery, OverviewRound, OverviewSnapshot
from shared.bus import UnitOfWork
from shared.events import DeliveryAccepted, DispatchProgress, Envelope, RoundDefined, SamplingProgress


async def on_round_defined(uow: UnitOfWork, envelope: Envelope, event: RoundDefined) -> None:
    values = {"revision": event.revision, "phase": event.phase, "definition": event.model_dump(mode="json"),
              "received_at": sa.func.now()}
    statement = pg_insert(OverviewRound).values(round_id=event.round_id, **values)
    await uow.session.execute(
        statement.on_conflict_do_update(
            index_elements=[OverviewRound.round_id], set_=values, where=OverviewRound.revision < statement.excluded.revision
        )
    )


async def on_delivery_accepted(uow: UnitOfWork, envelope: Envelope, event: DeliveryAccepted) -> None:
    await uow.session.execute(
        pg_insert(OverviewDelivery)
        .values(
            delivery_id=event.delivery_id, round_id=event.round_id, kommunekode=event.kommunekode,
            supersedes=event.supersedes, delivered_by=event.delivered_by, rows_read=event.rows_read,
            rows_valid=event.rows_valid, rows_rejected=event.rows_rejected, rows_excluded=event.rows_excluded,
            exclusions=event.exclusions, accepted_at=event.accepted_at,
        )
        .on_conflict_do_nothing()
    )


async def _keep_latest(uow: UnitOfWork, source: str, event: SamplingProgress | DispatchProgress) -> None:
    values = {"as_of": event.as_of, "snapshot": event.model_dump(mode="json")}
    statement = pg_insert(OverviewSnapshot).values(round_id=event.round_id, source=source, **values)
    await uow.session.execute(
        statement.on_conflict_do_update(
            index_elements=[OverviewSnapshot.round_id, OverviewSnapshot.source], set_=values,
            where=OverviewSnapshot.as_of < statement.excluded.as_of,
        )
    )


async def on_sampling_progress(uow: UnitOfWork, envelope: Envelope, event: SamplingProgress) -> None:
    await _keep_latest(uow, "sampling", event)


async def on_dispatch_progress(uow: UnitOfWork, envelope: Envelope, event: DispatchProgress) -> None:
    await _keep_latest(uow, "dispatch", event)


HANDLERS = {
    RoundDefined: on_round_defined,
    DeliveryAccepted: on_delivery_accepted,
    SamplingProgress: on_sampling_progress,
    DispatchProgress: on_dispatch_progress,
}
