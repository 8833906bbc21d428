"""Dispatch's tables (schema ``dispatch``): plans, one invitation per sampled citizen, its steps,
and sealed contacts released by ingest before their citizen's invitation was planned."""

from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from services.dispatch.domain.lifecycle import InvitationStatus, StepStatus
from shared.audit import audit_log_table
from shared.bus import bus_tables
from shared.db import make_base
from shared.privacy import tombstone_table

Base = make_base("dispatch")
BUS = bus_tables(Base.metadata)
AUDIT = audit_log_table(Base.metadata)  # append-only (shared.audit)
TOMBSTONES = tombstone_table(Base.metadata)  # purged rounds, erased citizens (shared.privacy)

ROUND_DEFAULT = "*"  # round_plan.kommunekode for the plan of every municipality without its own
NO_CONTACT = "no_contact"  # skip reason: ingest released no contact for the citizen (never contacted)


class RoundPlanRow(Base):
    """The dispatch plan of a round (kommunekode "*") or of one municipality in it."""

    __tablename__ = "round_plan"

    round_id: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    kommunekode: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    plan: Mapped[dict] = mapped_column(JSONB)
    updated_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), server_default=sa.func.now())


class Invitation(Base):
    __tablename__ = "invitation"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    round_id: Mapped[str] = mapped_column(sa.Text)
    kommunekode: Mapped[str] = mapped_column(sa.Text)
    pseudonym: Mapped[str] = mapped_column(sa.Text)
    token_nonce: Mapped[bytes] = mapped_column(sa.LargeBinary)
    token_hash: Mapped[str] = mapped_column(sa.Text, unique=True)
    maalgruppe: Mapped[str] = mapped_column(sa.Text)
    stratum: Mapped[str] = mapped_column(sa.Text)
    arm: Mapped[str | None] = mapped_column(sa.Text)
    # The adaptive follow-up arm (domain.followup: followup_extra | followup_control), set when the
    # round's follow-up rule acts; NULL: not assigned. Every message sent after carries it.
    followup_arm: Mapped[str | None] = mapped_column(sa.Text)
    # Sealed contact details, opened only to send. NULL until contacts.released brings them (the
    # steps wait meanwhile), or for good when ingest had none to release.
    contact: Mapped[dict | None] = mapped_column(JSONB)
    status: Mapped[str] = mapped_column(sa.Text, default=InvitationStatus.ACTIVE.value)  # domain.lifecycle.InvitationStatus
    expires_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), server_default=sa.func.now())
    # The invitation's number, from a sequence: its answer id (shared.answer_id.answer_id_for),
    # printed on its paper questionnaire, is derived from it.
    answer_seq: Mapped[int] = mapped_column(
        sa.BigInteger, sa.Sequence("invitation_answer_seq", schema="dispatch", minvalue=1, maxvalue=999_999_999),
        server_default=sa.text("nextval('dispatch.invitation_answer_seq')"), unique=True)

    __table_args__ = (sa.UniqueConstraint("round_id", "pseudonym", name="uq_invitation_round_pseudonym"),)


class DispatchStep(Base):
    """One planned message: the invitation or a reminder, on one channel (letter, sms, or a
    reminder's paper questionnaire: ``paper_exempt`` / ``paper_all``, domain/plan.py).

    status: a ``domain.lifecycle.StepStatus``, moving as ``domain.lifecycle.TRANSITIONS`` says
    (planned -> sending, the attempt committed before the external call, -> sent, and so on).

    ``due_at`` is ``domain.schedule.due_time`` of the step under the round's definition, stored
    so the claim can walk the ``(status, due_at)`` index; NULL while the round has no schedule
    (no definition, not in a sending phase, no invitation date). Every revision of the round
    that changes it rewrites it (``service.reschedule``).
    """

    __tablename__ = "dispatch_step"

    invitation_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey(Invitation.id, ondelete="CASCADE"), primary_key=True)
    step: Mapped[str] = mapped_column(sa.Text, primary_key=True)  # invitation | reminder_1 | reminder_2
    channel: Mapped[str] = mapped_column(sa.Text, primary_key=True)  # letter | sms | paper_exempt | paper_all
    due_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    # The plan's (or the arm's) reminder_interval_days, which a reminder's due time needs when
    # the round sets no date for it; NULL for the invitation.
    interval_days: Mapped[float | None] = mapped_column(sa.Float)
    status: Mapped[str] = mapped_column(sa.Text, default=StepStatus.PLANNED.value)
    attempts: Mapped[int] = mapped_column(default=0)
    sent_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    provider_reference: Mapped[str | None] = mapped_column(sa.Text)
    sending_since: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    claimed_by: Mapped[int | None] = mapped_column(sa.BigInteger)  # the sender instance's advisory-lock key
    # When a sender first handed the step to its channel (past the stop rule's re-check): from then
    # on the message may have been delivered, and the step is finished with its key whatever the
    # citizen does meanwhile (domain.lifecycle: ``stops``). NULL: never handed over.
    handed_over_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    last_error: Mapped[str | None] = mapped_column(sa.Text)  # redacted
    skip_reason: Mapped[str | None] = mapped_column(sa.Text)  # answered | opted_out | no_phone | no_contact | round_purged | has_digital_post | paper_questionnaire

    __table_args__ = (sa.Index("ix_dispatch_step_due", "status", "due_at"),)

    @property
    def idempotency_key(self) -> str:
        # What the message *is*, never the attempt: the receivers dedupe on it.
        return f"{self.invitation_id}.{self.step}.{self.channel}"


class ReleasedContactRow(Base):
    """A contact released (contacts.released) before planning created the citizen's invitation.

    The release and the sample chunk it answers travel on different topics, so either may come
    first. Planning the invitation takes the row (and deletes it). ``contact`` NULL: ingest holds
    no contact for the citizen, whose steps are planned as skipped (``no_contact``)."""

    __tablename__ = "released_contact"

    round_id: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    pseudonym: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    kommunekode: Mapped[str] = mapped_column(sa.Text)
    contact: Mapped[dict | None] = mapped_column(JSONB)
    received_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), server_default=sa.func.now())


class RoundQuestionnaireRow(Base):
    """A round's questionnaires for print, as responses last offered them (questionnaire.offered,
    the latest ``offered_at``): ``"*"`` and any municipality with a supplement of its own ->
    ``shared.events.OfferedQuestionnaire``. The paper questionnaire is printed from it."""

    __tablename__ = "round_questionnaire"

    round_id: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    offered_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))
    questionnaires: Mapped[dict] = mapped_column(JSONB)
    updated_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), server_default=sa.func.now())


class RoundDefinitionRow(Base):
    """A round's definition as ingest last sent it (round.defined, the highest revision).

    ``steps_cancelled_at``: when the round's unsent steps were cancelled at the end of fieldwork
    (NULL while that has not been done, or when steps may have become planned again since)."""

    __tablename__ = "round_definition"

    round_id: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    revision: Mapped[int] = mapped_column(sa.Integer)
    phase: Mapped[str] = mapped_column(sa.Text)
    definition: Mapped[dict] = mapped_column(JSONB)  # the RoundDefined payload
    steps_cancelled_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), server_default=sa.func.now())


class FollowupRuleRow(Base):
    """A round's adaptive follow-up rule (domain.followup.FollowupRule) and, once it has acted
    (``applied_at``), what it saw and chose: the cells' observed counts (``counts``: stratum ->
    [invited, answered]), the chosen cells in rank order and the number per arm. With the rule's
    seed these reproduce every citizen's arm (``invitation.followup_arm``)."""

    __tablename__ = "followup_rule"

    round_id: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    rule: Mapped[dict] = mapped_column(JSONB)
    set_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), server_default=sa.func.now())
    applied_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    counts: Mapped[dict | None] = mapped_column(JSONB)
    cells: Mapped[list | None] = mapped_column(JSONB)
    arms: Mapped[dict | None] = mapped_column(JSONB)
