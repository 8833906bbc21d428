"""Analytics' event handlers: keep pseudonymous facts; every table rebuilds from a replay."""

from __future__ import annotations

from sqlalchemy.dialects.postgresql import insert as pg_insert

from services.analytics.models import Invited, ResponseFact, StratumFrame
from shared.bus import UnitOfWork
from shared.events import Envelope, InvitationSent, ResponseSubmitted, SampleDrawn


async def on_sample_drawn(uow: UnitOfWork, envelope: Envelope, event: SampleDrawn) -> None:
    for summary in event.strata:
        statement = pg_insert(StratumFrame).values(
            round_id=event.round_id,
            stratum=summary.stratum,
            kommunekode=event.kommunekode,
            maalgruppe=summary.maalgruppe,
            population=summary.population,
            sample=summary.sample,
        )
        await uow.session.execute(
            statement.on_conflict_do_update(
                index_elements=[StratumFrame.round_id, StratumFrame.stratum],
                set_={"population": statement.excluded.population, "sample": statement.excluded.sample},
            )
        )


async def on_invitation_sent(uow: UnitOfWork, envelope: Envelope, event: InvitationSent) -> None:
    # Only the first message makes a citizen "invited"; reminders do not count again.
    await uow.session.execute(
        pg_insert(Invited)
        .values(
            round_id=event.round_id,
            pseudonym=event.pseudonym,
            kommunekode=event.kommunekode,
            stratum=event.stratum,
            arm=event.arm,
            first_sent_at=event.sent_at,
        )
        .on_conflict_do_nothing()
    )


async def on_response_submitted(uow: UnitOfWork, envelope: Envelope, event: ResponseSubmitted) -> None:
    # Keyed by round and pseudonym: one answer per citizen and round, however often it arrives.
    await uow.session.execute(
        pg_insert(ResponseFact)
        .values(
            round_id=event.round_id,
            pseudonym=event.pseudonym,
            kommunekode=event.kommunekode,
            stratum=event.stratum,
            maalgruppe=event.maalgruppe,
            gender=event.bands.gender,
            age_band=event.bands.age_band,
            duration_band=event.bands.duration_band,
            design_weight=event.design_weight,
            arm=event.arm,
            mode=event.mode,
            questionnaire_id=event.questionnaire_id,
            questionnaire_version=event.questionnaire_version,
            answers=event.answers,
            submitted_at=event.submitted_at,
        )
        .on_conflict_do_nothing()
    )


HANDLERS = {
    "sample.drawn": on_sample_drawn,
    "invitation.sent": on_invitation_sent,
    "response.submitted": on_response_submitted,
}
