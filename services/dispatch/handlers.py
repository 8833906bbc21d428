"""Dispatch's event handlers: plan invitations from the sample; stop reminders on an answer."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert

from services.dispatch.config import DispatchSettings
from services.dispatch.links import link_token, new_nonce, token_hash
from services.dispatch.models import DispatchStep, Invitation
from shared.bus import UnitOfWork
from shared.events import Envelope, LinkIssued, ResponseOptedOut, ResponseSubmitted, SampleDrawn

STEPS = ("invitation", "reminder_1", "reminder_2")


def make_handlers(settings: DispatchSettings):
    async def on_sample_drawn(uow: UnitOfWork, envelope: Envelope, event: SampleDrawn) -> None:
        now = datetime.now(UTC)
        expires_at = now + timedelta(days=settings.link_validity_days)
        for person in event.persons:
            nonce = new_nonce()
            hashed = token_hash(link_token(settings.link_key_bytes, nonce))
            inserted = (
                await uow.session.execute(
                    pg_insert(Invitation)
                    .values(
                        round_id=event.round_id,
                        kommunekode=event.kommunekode,
                        pseudonym=person.pseudonym,
                        token_nonce=nonce,
                        token_hash=hashed,
                        maalgruppe=person.maalgruppe,
                        stratum=person.stratum,
                        arm=None,
                        contact=person.contact.model_dump(),
                        status="active",
                        expires_at=expires_at,
                    )
                    .on_conflict_do_nothing(constraint="uq_invitation_round_pseudonym")
                    .returning(Invitation.id)
                )
            ).scalar_one_or_none()
            if inserted is None:
                continue  # already planned (a replayed chunk of a draw we have)
            await uow.session.execute(
                sa.insert(DispatchStep),
                [
                    {
                        "invitation_id": inserted,
                        "step": step,
                        "channel": "digital_post",
                        "due_at": now + timedelta(days=settings.reminder_interval_days * i),
                        "status": "planned",
                        "attempts": 0,
                    }
                    for i, step in enumerate(STEPS[: 1 + settings.reminder_count])
                ],
            )
            uow.publish(
                LinkIssued(
                    round_id=event.round_id,
                    kommunekode=event.kommunekode,
                    pseudonym=person.pseudonym,
                    token_hash=hashed,
                    maalgruppe=person.maalgruppe,
                    stratum=person.stratum,
                    bands=person.bands,
                    design_weight=person.design_weight,
                    expires_at=expires_at,
                )
            )

    async def stop_reminders(uow: UnitOfWork, round_id: str, pseudonym: str, status: str) -> None:
        invitation_id = (
            await uow.session.execute(
                sa.update(Invitation)
                .where(Invitation.round_id == round_id, Invitation.pseudonym == pseudonym)
                .values(status=status)
                .returning(Invitation.id)
            )
        ).scalar_one_or_none()
        if invitation_id is not None:
            await uow.session.execute(
                sa.update(DispatchStep)
                .where(DispatchStep.invitation_id == invitation_id, DispatchStep.status == "planned")
                .values(status="skipped")
            )

    async def on_response_submitted(uow: UnitOfWork, envelope: Envelope, event: ResponseSubmitted) -> None:
        await stop_reminders(uow, event.round_id, event.pseudonym, "answered")

    async def on_response_opted_out(uow: UnitOfWork, envelope: Envelope, event: ResponseOptedOut) -> None:
        await stop_reminders(uow, event.round_id, event.pseudonym, "opted_out")

    return {
        "sample.drawn": on_sample_drawn,
        "response.submitted": on_response_submitted,
        "response.opted_out": on_response_opted_out,
    }
