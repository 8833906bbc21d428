"""Dispatch's event handlers: plan invitations from the sample; stop reminders on an answer."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from services.dispatch.config import DispatchSettings
from services.dispatch.domain.plan import assign_arm, plan_for_arm, planned_steps
from services.dispatch.links import link_token, new_nonces, token_hash
from services.dispatch.models import DispatchStep, Invitation
from services.dispatch.service import resolve_plan
from services.dispatch.stages import StageTimes
from shared.bus import UnitOfWork
from shared.events import Envelope, LinkIssued, ResponseOptedOut, ResponseSubmitted, SampleDrawn

INSERT_CHUNK = 5000  # rows per INSERT ... SELECT FROM unnest(...)

_INVITATIONS = Invitation.__table__
_STEPS = DispatchStep.__table__

# Set-based planning: one statement per table and chunk, the rows as parallel arrays (no
# per-row bind parameters to compile). A replayed chunk of a draw we already have inserts nothing.
_INSERT_INVITATIONS = sa.text(
    f"""
    INSERT INTO {_INVITATIONS.fullname}
        (id, round_id, kommunekode, pseudonym, token_nonce, token_hash, maalgruppe, stratum, arm, contact, status,
         expires_at)
    SELECT gen_random_uuid(), :round_id, :kommunekode, t.pseudonym, t.token_nonce, t.token_hash, t.maalgruppe,
           t.stratum, t.arm, CAST(t.contact AS jsonb), 'active', :expires_at
    FROM unnest(CAST(:pseudonym AS text[]), CAST(:token_nonce AS bytea[]), CAST(:token_hash AS text[]),
                CAST(:maalgruppe AS text[]), CAST(:stratum AS text[]), CAST(:arm AS text[]), CAST(:contact AS text[]))
         AS t(pseudonym, token_nonce, token_hash, maalgruppe, stratum, arm, contact)
    ON CONFLICT ON CONSTRAINT uq_invitation_round_pseudonym DO NOTHING
    RETURNING id, pseudonym, token_hash, arm
    """
)
_INSERT_STEPS = sa.text(
    f"""
    INSERT INTO {_STEPS.fullname} (invitation_id, step, channel, due_at, status, attempts)
    SELECT t.invitation_id, t.step, t.channel, t.due_at, 'planned', 0
    FROM unnest(CAST(:invitation_id AS uuid[]), CAST(:step AS text[]), CAST(:channel AS text[]),
                CAST(:due_at AS timestamptz[])) AS t(invitation_id, step, channel, due_at)
    """
)


def make_handlers(settings: DispatchSettings, stages: StageTimes | None = None):
    stages = stages or StageTimes()

    async def on_sample_drawn(uow: UnitOfWork, envelope: Envelope, event: SampleDrawn) -> None:
        with stages.measure("plan", len(event.persons)):
            await plan_sample(uow, event)

    async def plan_sample(uow: UnitOfWork, event: SampleDrawn) -> None:
        now = datetime.now(UTC)
        expires_at = now + timedelta(days=settings.link_validity_days)
        plan = await resolve_plan(uow.session, settings, event.round_id, event.kommunekode)
        persons = {p.pseudonym: p for p in event.persons}
        people = list(persons.values())
        for start in range(0, len(people), INSERT_CHUNK):
            chunk = people[start : start + INSERT_CHUNK]
            columns: dict[str, list] = {name: [] for name in ("pseudonym", "token_nonce", "token_hash", "maalgruppe",
                                                               "stratum", "arm", "contact")}
            # One read of the system's randomness for the chunk's nonces (16 bytes each).
            randomness = new_nonces(len(chunk))
            for i, person in enumerate(chunk):
                nonce = randomness[16 * i : 16 * i + 16]
                columns["pseudonym"].append(person.pseudonym)
                columns["token_nonce"].append(nonce)
                columns["token_hash"].append(token_hash(link_token(settings.link_key_bytes, nonce)))
                columns["maalgruppe"].append(person.maalgruppe)
                columns["stratum"].append(person.stratum)
                columns["arm"].append(assign_arm(plan, event.round_id, person.pseudonym))
                columns["contact"].append(person.contact.model_dump_json())
            inserted = (
                await uow.session.execute(
                    _INSERT_INVITATIONS,
                    {**columns, "round_id": event.round_id, "kommunekode": event.kommunekode, "expires_at": expires_at},
                )
            ).all()
            steps: dict[str, list] = {"invitation_id": [], "step": [], "channel": [], "due_at": []}
            plans_by_arm: dict = {}
            for invitation_id, pseudonym, hashed, arm in inserted:
                person = persons[pseudonym]
                if arm not in plans_by_arm:
                    plans_by_arm[arm] = planned_steps(plan_for_arm(plan, arm), now)
                for step, channel, due_at in plans_by_arm[arm]:
                    steps["invitation_id"].append(invitation_id)
                    steps["step"].append(step)
                    steps["channel"].append(channel)
                    steps["due_at"].append(due_at)
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
            if steps["invitation_id"]:
                await uow.session.execute(_INSERT_STEPS, steps)

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
