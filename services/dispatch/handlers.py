"""Dispatch's event handlers: plan invitations from the sample; stop reminders on an answer."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert

from services.dispatch.config import DispatchSettings
from services.dispatch.domain.plan import assign_arm, plan_for_arm, planned_steps
from services.dispatch.links import link_token, new_nonce, token_hash
from services.dispatch.models import DispatchStep, Invitation
from services.dispatch.service import resolve_plan
from shared.bus import UnitOfWork
from shared.events import Envelope, LinkIssued, ResponseOptedOut, ResponseSubmitted, SampleDrawn

INSERT_CHUNK = 1000  # rows per multi-row INSERT (asyncpg allows 32767 parameters)


def make_handlers(settings: DispatchSettings):
    async def on_sample_drawn(uow: UnitOfWork, envelope: Envelope, event: SampleDrawn) -> None:
        now = datetime.now(UTC)
        expires_at = now + timedelta(days=settings.link_validity_days)
        plan = await resolve_plan(uow.session, settings, event.round_id, event.kommunekode)
        persons = {p.pseudonym: p for p in event.persons}
        people = list(persons.values())
        for start in range(0, len(people), INSERT_CHUNK):
            rows = []
            for person in people[start : start + INSERT_CHUNK]:
                nonce = new_nonce()
                rows.append(
                    {
                        "round_id": event.round_id,
                        "kommunekode": event.kommunekode,
                        "pseudonym": person.pseudonym,
                        "token_nonce": nonce,
                        "token_hash": token_hash(link_token(settings.link_key_bytes, nonce)),
                        "maalgruppe": person.maalgruppe,
                        "stratum": person.stratum,
                        "arm": assign_arm(plan, event.round_id, person.pseudonym),
                        "contact": person.contact.model_dump(),
                        "status": "active",
                        "expires_at": expires_at,
                    }
                )
            # A replayed chunk of a draw we already have inserts nothing and publishes nothing.
            inserted = (
                await uow.session.execute(
                    pg_insert(Invitation)
                    .values(rows)
                    .on_conflict_do_nothing(constraint="uq_invitation_round_pseudonym")
                    .returning(Invitation.id, Invitation.pseudonym, Invitation.token_hash, Invitation.arm)
                )
            ).all()
            steps = []
            for invitation_id, pseudonym, hashed, arm in inserted:
                person = persons[pseudonym]
                for step, channel, due_at in planned_steps(plan_for_arm(plan, arm), now):
                    steps.append({"invitation_id": invitation_id, "step": step, "channel": channel, "due_at": due_at,
                                  "status": "planned", "attempts": 0})
                uow.publish(
                    LinkIssued(
                        round_id=event.round_id,
                        kommunekode=event.kommunekode,
                        pseudonym=pseudonym,
                        token_hash=hashed,
                        maalgruppe=person.maalgruppe,
                        stratum=person.stratum,
                        bands=person.bands,
                        design_weight=person.design_weight,
                        arm=arm,
                        expires_at=expires_at,
                    )
                )
            if steps:
                await uow.session.execute(sa.insert(DispatchStep), steps)

    async def stop_reminders(uow: UnitOfWork, round_id: str, pseudonym: str, status: str) -> None:
        # Takes the invitation's row lock: a sender claiming this citizen's steps right now
        # either committed its claim first (that message goes) or sees the new status (it does not).
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
                .values(status="skipped", skip_reason=status)
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
