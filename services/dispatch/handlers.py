"""Dispatch's event handlers: plan invitations from the sample; give them the contacts ingest
releases; stop reminders on an answer; follow the round's definition (round.defined: due times,
the end of fieldwork); keep the round's questionnaire for print (questionnaire.offered).

A sample.drawn v2 chunk carries no contact: ingest answers it with contacts.released, on another
topic, so the two may arrive in either order (and again, replayed). Whichever comes second
completes the citizen: a release for an invitation already planned fills its contact and makes
its ``waiting`` steps ``planned``; a release for a citizen not planned yet waits in
``released_contact`` until planning takes it. Both handlers first take one transaction-scoped
advisory lock per round and municipality, so neither can miss the other's uncommitted rows.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from services.dispatch.config import DispatchSettings
from services.dispatch.domain.plan import assign_arm, plan_for_arm, planned_steps
from services.dispatch.links import link_token, new_nonces, token_hash
from services.dispatch.domain.lifecycle import UNSENT, InvitationStatus, StepStatus, sends, stop_reason, stops
from services.dispatch.models import NO_CONTACT, TOMBSTONES, DispatchStep, Invitation, ReleasedContactRow
from services.dispatch.domain.schedule import Schedule, due_time, fieldwork_over
from services.dispatch.paper import store_offered
from services.dispatch.service import apply_definition, cancel_unsent, load_schedule, lock_round, resolve_plan, round_lock_key
from services.dispatch.stages import StageTimes
from shared.answer_id import answer_id_for
from shared.bus import UnitOfWork
from shared.crypto import SealedContact, open_contact, seal_phone
from shared.db import advisory_key
from shared.privacy import erased_among, round_purged
from shared.events import (
    ContactsReleased,
    Envelope,
    InterviewPhonesReleased,
    ReleasedPhone,
    LinkIssued,
    QuestionnaireOffered,
    ResponseOptedOut,
    ResponseSubmitted,
    RoundDefined,
    SampleDrawn,
    SampleDrawnV1,
)

INSERT_CHUNK = 5000  # rows per INSERT ... SELECT FROM unnest(...)

_INVITATIONS = Invitation.__table__
_STEPS = DispatchStep.__table__
_RELEASED = ReleasedContactRow.__table__

# Set-based planning: one statement per table and chunk, the rows as parallel arrays (no
# per-row bind parameters to compile). A replayed chunk of a draw we already have inserts nothing.
# A contact is NULL while it has not been released.
_INSERT_INVITATIONS = sa.text(
    f"""
    INSERT INTO {_INVITATIONS.fullname}
        (id, round_id, kommunekode, pseudonym, token_nonce, token_hash, maalgruppe, stratum, arm, contact, status,
         expires_at)
    SELECT gen_random_uuid(), :round_id, :kommunekode, t.pseudonym, t.token_nonce, t.token_hash, t.maalgruppe,
           t.stratum, t.arm, CAST(t.contact AS jsonb), '{InvitationStatus.ACTIVE}', :expires_at
    FROM unnest(CAST(:pseudonym AS text[]), CAST(:token_nonce AS bytea[]), CAST(:token_hash AS text[]),
                CAST(:maalgruppe AS text[]), CAST(:stratum AS text[]), CAST(:arm AS text[]), CAST(:contact AS text[]))
         AS t(pseudonym, token_nonce, token_hash, maalgruppe, stratum, arm, contact)
    ON CONFLICT ON CONSTRAINT uq_invitation_round_pseudonym DO NOTHING
    RETURNING id, pseudonym, token_hash, arm, answer_seq
    """
)
_INSERT_STEPS = sa.text(
    f"""
    INSERT INTO {_STEPS.fullname} (invitation_id, step, channel, due_at, interval_days, status, skip_reason, attempts)
    SELECT t.invitation_id, t.step, t.channel, t.due_at, t.interval_days, t.status, t.skip_reason, 0
    FROM unnest(CAST(:invitation_id AS uuid[]), CAST(:step AS text[]), CAST(:channel AS text[]),
                CAST(:due_at AS timestamptz[]), CAST(:interval_days AS float8[]), CAST(:status AS text[]),
                CAST(:skip_reason AS text[]))
         AS t(invitation_id, step, channel, due_at, interval_days, status, skip_reason)
    """
)

# Planning takes the releases that came before the chunk (the contact as JSON text, NULL when
# ingest had none), and they are gone from the table with that.
_TAKE_RELEASED = sa.text(
    f"""
    DELETE FROM {_RELEASED.fullname}
    WHERE round_id = :round_id AND pseudonym = ANY(CAST(:pseudonym AS text[]))
    RETURNING pseudonym, CAST(contact AS text)
    """
)

# A release, in one statement (its arrays sent once; PostgreSQL runs every data-modifying CTE,
# read or not): the waiting steps of the round's invitations among these citizens become
# planned, or skipped when ingest has no contact (NULL), and those invitations get the contact;
# a citizen without an invitation yet has the release kept for planning. An invitation with no
# waiting step (contact already there, answered, already skipped) keeps what it has, and a kept
# release is not replaced: a replay changes nothing, and of two different releases for one
# citizen the first to arrive wins, whether it came before planning or after.
#
# Every row is reached from the release's own citizens, never by reading the round, so a
# release costs the same late in a national round as early. Mid-wave the statistics lag far
# behind the tables, and the planner, believing few rows match the round or the status
# 'waiting', read all of them instead (per release: O(round)). So each invitation is looked up
# by its whole unique key, and its steps by their key's prefix, in subqueries that OFFSET 0
# keeps apart (the planner cannot turn them into scans of the round); the steps are then updated
# by their whole key, with the status decided in SET, which PostgreSQL evaluates on the row as
# it is when updated (a concurrent answer's skip stands): no condition on the status that the
# (status, due_at) index could be chosen for.
_APPLY_RELEASE = sa.text(
    f"""
    WITH released AS (
        SELECT r.pseudonym, r.contact
        FROM unnest(CAST(:pseudonym AS text[]), CAST(:contact AS text[])) AS r(pseudonym, contact)
    ), invited AS (
        SELECT i.id, i.contact IS NULL AND i.status = '{InvitationStatus.ACTIVE}' AS without_contact, r.pseudonym, r.contact
        FROM released AS r
        CROSS JOIN LATERAL (SELECT id, contact, status FROM {_INVITATIONS.fullname}
                            WHERE round_id = :round_id AND pseudonym = r.pseudonym OFFSET 0) AS i
    ), steps AS (
        SELECT k.invitation_id, k.step, k.channel, v.contact
        FROM invited AS v
        CROSS JOIN LATERAL (SELECT invitation_id, step, channel FROM {_STEPS.fullname}
                            WHERE invitation_id = v.id OFFSET 0) AS k
        WHERE v.without_contact
    ), flipped AS (
        UPDATE {_STEPS.fullname} AS s
        SET status = CASE WHEN s.status <> '{StepStatus.WAITING}' THEN s.status
                          WHEN t.contact IS NULL THEN '{StepStatus.SKIPPED}' ELSE '{StepStatus.PLANNED}' END,
            skip_reason = CASE WHEN s.status <> '{StepStatus.WAITING}' THEN s.skip_reason
                               WHEN t.contact IS NULL THEN '{NO_CONTACT}' END
        FROM steps AS t
        WHERE s.invitation_id = t.invitation_id AND s.step = t.step AND s.channel = t.channel
        RETURNING s.invitation_id, s.status
    ), filled AS (
        UPDATE {_INVITATIONS.fullname} AS i SET contact = CAST(v.contact AS jsonb)
        FROM invited AS v
        WHERE i.id = v.id AND v.contact IS NOT NULL
          AND i.id IN (SELECT invitation_id FROM flipped WHERE status = '{StepStatus.PLANNED}')
    )
    INSERT INTO {_RELEASED.fullname} (round_id, pseudonym, kommunekode, contact)
    SELECT :round_id, r.pseudonym, :kommunekode, CAST(r.contact AS jsonb)
    FROM released AS r
    WHERE NOT EXISTS (SELECT 1 FROM invited AS v WHERE v.pseudonym = r.pseudonym)
    ON CONFLICT (round_id, pseudonym) DO NOTHING
    """
)

_LOCK = sa.text("SELECT pg_advisory_xact_lock(:key)")


def municipality_lock_key(round_id: str, kommunekode: str) -> int:
    """The advisory-lock key of one municipality's part of a round (shared.db.advisory_key)."""
    return advisory_key(f"dispatch.contacts|{round_id}|{kommunekode}")


async def lock_municipality(session: AsyncSession, round_id: str, kommunekode: str) -> None:
    """Serialise planning and releases of one municipality in a round until the transaction
    ends. A consumer transaction may handle several municipalities' events: ``lock_in_order``
    has then taken their locks already (the same lock again in one transaction is granted at
    once)."""
    await session.execute(_LOCK, {"key": municipality_lock_key(round_id, kommunekode)})


async def lock_in_order(uow: UnitOfWork, payloads: list) -> None:
    """The consumer's batch preparation (shared.bus.consumer.BatchPreparation): every advisory
    lock the batch's handlers will take, taken first, in one order for every transaction: the
    rounds (exclusive where a definition changes one, else shared) by key, then the
    municipalities by key. Handlers taking them one by one in arrival order let two replicas'
    batches (one with municipalities X then Y, the other Y then X, on different topics) wait
    for each other until PostgreSQL failed one and the consumer went message by message."""
    rounds: dict[str, bool] = {}  # round -> exclusive
    municipalities: set[tuple[str, str]] = set()
    for payload in payloads:
        if isinstance(payload, RoundDefined):
            rounds[payload.round_id] = True
        elif isinstance(payload, (SampleDrawn, SampleDrawnV1, ContactsReleased)):
            rounds.setdefault(payload.round_id, False)
            municipalities.add((payload.round_id, payload.kommunekode))
    for round_id in sorted(rounds, key=round_lock_key):
        await lock_round(uow.session, round_id, exclusive=rounds[round_id])
    for key in sorted(municipality_lock_key(*m) for m in municipalities):
        await uow.session.execute(_LOCK, {"key": key})


async def apply_release(session: AsyncSession, round_id: str, kommunekode: str, contacts: dict[str, str | None]) -> None:
    """Contacts (sealed, as JSON text; None: ingest has none) for citizens of a round. Call with
    the municipality locked."""
    if contacts:
        await session.execute(
            _APPLY_RELEASE,
            {"round_id": round_id, "kommunekode": kommunekode, "pseudonym": list(contacts),
             "contact": list(contacts.values())},
        )


def make_handlers(settings: DispatchSettings, stages: StageTimes | None = None):
    stages = stages or StageTimes()

    async def on_sample_drawn(uow: UnitOfWork, envelope: Envelope, event: SampleDrawn | SampleDrawnV1) -> None:
        with stages.measure("plan", len(event.persons)):
            await lock_round(uow.session, event.round_id, exclusive=False)
            await lock_municipality(uow.session, event.round_id, event.kommunekode)
            # A chunk after the round's purge plans nothing; erased citizens in it are left out.
            if await round_purged(uow.session, TOMBSTONES, event.round_id):
                return
            if erased := await erased_among(uow.session, TOMBSTONES, [p.pseudonym for p in event.persons]):
                event = event.model_copy(update={"persons": [p for p in event.persons if p.pseudonym not in erased]})
            schedule = await load_schedule(uow.session, event.round_id)
            await plan_sample(uow, event, schedule)
            await cancel_if_over(uow, event.round_id, schedule)

    async def on_contacts_released(uow: UnitOfWork, envelope: Envelope, event: ContactsReleased) -> None:
        with stages.measure("release", len(event.contacts) + len(event.missing)):
            await lock_round(uow.session, event.round_id, exclusive=False)
            await lock_municipality(uow.session, event.round_id, event.kommunekode)
            # A release after the round's purge keeps nothing; nor one of an erased citizen.
            if await round_purged(uow.session, TOMBSTONES, event.round_id):
                return
            contacts: dict[str, str | None] = {c.pseudonym: c.contact.model_dump_json() for c in event.contacts}
            # Listed as missing and released both (ingest should never): not contacting the
            # citizen is the side that cannot go wrong, e.g. when they have just objected.
            contacts.update(dict.fromkeys(event.missing))
            for pseudonym in await erased_among(uow.session, TOMBSTONES, list(contacts)):
                del contacts[pseudonym]
            await apply_release(uow.session, event.round_id, event.kommunekode, contacts)
            await release_phones(uow, event)
            await cancel_if_over(uow, event.round_id, await load_schedule(uow.session, event.round_id))

    async def release_phones(uow: UnitOfWork, event: ContactsReleased) -> None:
        # Interviews by phone (the plan's phone_interviews): each released citizen's phone number
        # alone, sealed again for responses, in the same transaction as the release. A citizen
        # listed as missing too is left out, as they are never contacted.
        plan = await resolve_plan(uow.session, settings, event.round_id, event.kommunekode)
        if not plan.phone_interviews:
            return
        key_id = settings.interview_active_key_id
        if not key_id or key_id not in settings.interview_keyring:
            raise RuntimeError("the round's plan offers interviews by phone, but INTERVIEW_KEYS / INTERVIEW_ACTIVE_KEY_ID are not set")
        missing = set(event.missing)
        phones = []
        for released in event.contacts:
            if released.pseudonym in missing:
                continue
            phone = phone_of(released.contact, event.round_id, released.pseudonym)
            if phone:
                phones.append(ReleasedPhone(pseudonym=released.pseudonym, phone=seal_phone(
                    phone, round_id=event.round_id, pseudonym=released.pseudonym, key_id=key_id,
                    key=settings.interview_keyring[key_id])))
        if phones:
            uow.publish(InterviewPhonesReleased(round_id=event.round_id, kommunekode=event.kommunekode, phones=phones))

    def phone_of(sealed: SealedContact, round_id: str, pseudonym: str) -> str | None:
        return open_contact(sealed, round_id=round_id, pseudonym=pseudonym, keyring=settings.contact_keyring).phone_e164

    async def cancel_if_over(uow: UnitOfWork, round_id: str, schedule: Schedule | None) -> None:
        # A sample or a release arriving after fieldwork ended plans nothing that could be sent.
        if fieldwork_over(schedule, datetime.now(UTC)):
            await cancel_unsent(uow.session, round_id)

    async def on_round_defined(uow: UnitOfWork, envelope: Envelope, event: RoundDefined) -> None:
        await apply_definition(uow.session, event, datetime.now(UTC))

    def link_expiry(now: datetime, schedule: Schedule | None) -> datetime:
        # A link lives link_validity_days from its invitation, and at least to the end of fieldwork
        # (responses closes a round's links at its end itself).
        start = max(now, schedule.invitation_at) if schedule and schedule.invitation_at else now
        expires_at = start + timedelta(days=settings.link_validity_days)
        if schedule is not None and schedule.fieldwork_ends_at is not None:
            expires_at = max(expires_at, schedule.fieldwork_ends_at)
        return expires_at

    async def plan_sample(uow: UnitOfWork, event: SampleDrawn | SampleDrawnV1, schedule: Schedule | None) -> None:
        now = datetime.now(UTC)
        expires_at = link_expiry(now, schedule)
        plan = await resolve_plan(uow.session, settings, event.round_id, event.kommunekode)
        persons = {p.pseudonym: p for p in event.persons}
        people = list(persons.values())
        # pseudonym -> sealed contact as JSON text, None where ingest released none. v1 brought
        # every contact along; for v2 only the releases that came before this chunk are known.
        released: dict[str, str | None]
        if isinstance(event, SampleDrawnV1):
            released = {p.pseudonym: p.contact.model_dump_json() for p in people}
        else:
            released = dict(
                (await uow.session.execute(_TAKE_RELEASED, {"round_id": event.round_id, "pseudonym": list(persons)})).all()
            )
        planned_now: set[str] = set()
        for start in range(0, len(people), INSERT_CHUNK):
            chunk = people[start : start + INSERT_CHUNK]
            columns: dict[str, list] = {name: [] for name in ("pseudonym", "token_nonce", "token_hash", "maalgruppe",
                                                               "stratum", "arm", "contact")}
            # One read of the system's randomness for the chunk's nonces (shared/links.py).
            nonces = new_nonces(len(chunk))
            for nonce, person in zip(nonces, chunk, strict=True):
                columns["pseudonym"].append(person.pseudonym)
                columns["token_nonce"].append(nonce)
                columns["token_hash"].append(token_hash(link_token(settings.link_key_bytes, nonce)))
                columns["maalgruppe"].append(person.maalgruppe)
                columns["stratum"].append(person.stratum)
                columns["arm"].append(assign_arm(plan, event.round_id, person.pseudonym))
                columns["contact"].append(released.get(person.pseudonym))
            inserted = (
                await uow.session.execute(
                    _INSERT_INVITATIONS,
                    {**columns, "round_id": event.round_id, "kommunekode": event.kommunekode, "expires_at": expires_at},
                )
            ).all()
            steps: dict[str, list] = {"invitation_id": [], "step": [], "channel": [], "due_at": [],
                                      "interval_days": [], "status": [], "skip_reason": []}
            plans_by_arm: dict = {}
            for invitation_id, pseudonym, hashed, arm, answer_seq in inserted:
                person = persons[pseudonym]
                planned_now.add(pseudonym)
                if pseudonym not in released:
                    status, skip_reason = StepStatus.WAITING, None
                elif released[pseudonym] is None:
                    status, skip_reason = StepStatus.SKIPPED, NO_CONTACT
                else:
                    status, skip_reason = StepStatus.PLANNED, None
                if arm not in plans_by_arm:
                    plans_by_arm[arm] = [(step, channel, interval, due_time(schedule, step, channel, interval))
                                         for step, channel, interval in planned_steps(plan_for_arm(plan, arm))]
                for step, channel, interval, due_at in plans_by_arm[arm]:
                    steps["invitation_id"].append(invitation_id)
                    steps["step"].append(step)
                    steps["channel"].append(channel)
                    steps["due_at"].append(due_at)
                    steps["interval_days"].append(interval)
                    steps["status"].append(status)
                    steps["skip_reason"].append(skip_reason)
                # Issued whatever the contact: responses and analytics count every sampled
                # citizen, contacted or not.
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
                        answer_id=answer_id_for(answer_seq),
                    )
                )
            if steps["invitation_id"]:
                await uow.session.execute(_INSERT_STEPS, steps)
        if isinstance(event, SampleDrawn):
            # A release is kept only for a citizen without an invitation, so one taken here and not
            # planned now was planned meanwhile by another municipality's chunk of the round (the
            # lock is per municipality; sampling should never draw a citizen twice): apply it as
            # a release after planning, rather than drop it.
            leftover = {p: contact for p, contact in released.items() if p not in planned_now}
            await apply_release(uow.session, event.round_id, event.kommunekode, leftover)

    async def stop_reminders(uow: UnitOfWork, round_id: str, pseudonym: str, status: InvitationStatus) -> None:
        # The stop rule (domain.lifecycle.stops): the citizen's unsent steps never handed to their
        # channel are skipped here, and the sender's claim and its re-check before sending read
        # the same status. A step handed over and waiting for a retry stays: it may have been
        # delivered, and its retry with the same key finishes it.
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
        if invitation_id is not None and not sends(status):
            await uow.session.execute(
                sa.update(DispatchStep)
                .where(DispatchStep.invitation_id == invitation_id, DispatchStep.status.in_(UNSENT),
                       stops(sa.literal(str(status)), DispatchStep.handed_over_at))
                .values(status=StepStatus.SKIPPED, skip_reason=stop_reason(status))
            )

    async def on_response_submitted(uow: UnitOfWork, envelope: Envelope, event: ResponseSubmitted) -> None:
        await stop_reminders(uow, event.round_id, event.pseudonym, InvitationStatus.ANSWERED)

    async def on_response_opted_out(uow: UnitOfWork, envelope: Envelope, event: ResponseOptedOut) -> None:
        await stop_reminders(uow, event.round_id, event.pseudonym, InvitationStatus.OPTED_OUT)

    async def on_questionnaire_offered(uow: UnitOfWork, envelope: Envelope, event: QuestionnaireOffered) -> None:
        await store_offered(uow.session, event)

    return {
        QuestionnaireOffered: on_questionnaire_offered,
        SampleDrawn: on_sample_drawn,
        ContactsReleased: on_contacts_released,
        ResponseSubmitted: on_response_submitted,
        ResponseOptedOut: on_response_opted_out,
        RoundDefined: on_round_defined,
    }
