"""Responses' tables (schema ``responses``)."""

from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from shared.audit import audit_log_table
from shared.bus import bus_tables
from shared.db import make_base
from shared.privacy import tombstone_table

Base = make_base("responses")
BUS = bus_tables(Base.metadata)
AUDIT = audit_log_table(Base.metadata)  # append-only (shared.audit)
TOMBSTONES = tombstone_table(Base.metadata)  # purged rounds, erased citizens (shared.privacy)


class Respondent(Base):
    """A survey link, known by the hash of its token only."""

    __tablename__ = "respondent"

    token_hash: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    round_id: Mapped[str] = mapped_column(sa.Text)
    kommunekode: Mapped[str] = mapped_column(sa.Text)
    pseudonym: Mapped[str] = mapped_column(sa.Text)
    maalgruppe: Mapped[str] = mapped_column(sa.Text)
    stratum: Mapped[str] = mapped_column(sa.Text)
    gender: Mapped[str] = mapped_column(sa.String(1))
    age_band: Mapped[str] = mapped_column(sa.Text)
    duration_band: Mapped[str] = mapped_column(sa.Text)
    design_weight: Mapped[float]
    arm: Mapped[str | None] = mapped_column(sa.Text)
    expires_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))
    status: Mapped[str] = mapped_column(sa.Text, default="open")  # open | submitted | opted_out
    draft: Mapped[dict] = mapped_column(JSONB, default=dict)  # saved partial answers (free text scrubbed)
    finished_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    # The exact questionnaire the citizen was given, fixed when the link is first opened, so
    # a supplement or module published later never changes what their answers are checked against.
    questionnaire_key: Mapped[str | None] = mapped_column(sa.Text)
    opened_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    last_page: Mapped[int] = mapped_column(sa.Integer, default=0)  # highest page saved, for resuming
    # Printed on the paper questionnaire (shared.answer_id): the paper entry finds the link by it.
    answer_id: Mapped[str | None] = mapped_column(sa.Text, unique=True)


class Response(Base):
    __tablename__ = "response"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    token_hash: Mapped[str] = mapped_column(sa.ForeignKey(Respondent.token_hash, ondelete="CASCADE"), unique=True)
    questionnaire_id: Mapped[str] = mapped_column(sa.Text)
    questionnaire_version: Mapped[int]
    mode: Mapped[str] = mapped_column(sa.Text)  # web | paper | phone
    # The language the citizen answered in (domain/languages.py); None where it is not known
    # (the JSON API, paper entry without one).
    language: Mapped[str | None] = mapped_column(sa.Text)
    answers: Mapped[dict] = mapped_column(JSONB)
    submitted_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))
    questionnaire_key: Mapped[str | None] = mapped_column(sa.Text)
    entered_by: Mapped[str | None] = mapped_column(sa.Text)  # the operator or interviewer (token subject): paper, phone


class RoundQuestionnaire(Base):
    """Which questionnaire a round uses: a published core, optional modules and, per
    municipality, the version of its local supplement. Rounds without a row get the default core."""

    __tablename__ = "round_questionnaire"

    round_id: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    core: Mapped[str] = mapped_column(sa.Text)  # e.g. kl_core_v1
    modules: Mapped[list] = mapped_column(JSONB, default=list)  # e.g. ["digital_tools_v1"]
    supplements: Mapped[dict] = mapped_column(JSONB, default=dict)  # kommunekode -> supplement version
    updated_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))


class LocalSupplementRow(Base):
    """A municipality's published supplement. Insert-only: a version never changes once stored,
    because answers are validated against it by version."""

    __tablename__ = "local_supplement"

    kommunekode: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    version: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    definition: Mapped[dict] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))


class RoundState(Base):
    """A round's definition as ingest last sent it (round.defined, the highest revision): what
    responses needs of it is whether fieldwork is over (domain/rounds.py)."""

    __tablename__ = "round_state"

    round_id: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    revision: Mapped[int] = mapped_column(sa.Integer)
    phase: Mapped[str] = mapped_column(sa.Text)
    fieldwork_ends_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    definition: Mapped[dict] = mapped_column(JSONB)  # the RoundDefined payload
    updated_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), server_default=sa.func.now())


class InterviewRow(Base):
    """A citizen the interviewers may call (interviews by phone, services/responses/interview.py).

    The phone number is the one dispatch released on ``interview.phones_released``, kept sealed
    under the interview key (AES-GCM, bound to round and pseudonym) and opened only to show it on
    the interviewer's page, each time with an audit row. ``id`` is the reference the page, its
    forms and the audit rows use (never the pseudonym or the number). Whether the citizen has
    answered is the link's status (``respondent``), read at every call, so an answer on the web
    takes the citizen off the list at once."""

    __tablename__ = "interview"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    round_id: Mapped[str] = mapped_column(sa.Text)
    pseudonym: Mapped[str] = mapped_column(sa.Text)
    kommunekode: Mapped[str] = mapped_column(sa.Text)
    phone: Mapped[dict | None] = mapped_column(JSONB)  # SealedContact of the number; NULL once purged
    outcome: Mapped[str | None] = mapped_column(sa.Text)  # domain.interviews.Outcome; NULL: not called yet
    call_back_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    calls: Mapped[int] = mapped_column(sa.Integer, default=0)
    # The interviewer who has the citizen on their page now, until when (one caller at a time).
    claimed_by: Mapped[str | None] = mapped_column(sa.Text)
    claimed_until: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), server_default=sa.func.now())

    __table_args__ = (sa.UniqueConstraint("round_id", "pseudonym", name="uq_interview_round_pseudonym"),)
