"""Analytics' tables (schema ``analytics``): only pseudonymous facts, never contact data."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import BYTEA, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from shared.audit import audit_log_table
from shared.bus import bus_tables
from shared.db import make_base

Base = make_base("analytics")
BUS = bus_tables(Base.metadata)
AUDIT = audit_log_table(Base.metadata)  # append-only (shared.audit)


class StratumFrame(Base):
    """Population and sample per stratum, from sample.drawn (for weights and the FPC)."""

    __tablename__ = "stratum_frame"

    round_id: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    stratum: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    kommunekode: Mapped[str] = mapped_column(sa.Text)
    maalgruppe: Mapped[str] = mapped_column(sa.Text)
    population: Mapped[int]
    sample: Mapped[int]


class PopulationCell(Base):
    """The round's population (the drawn frame, not the sample) per municipality x target group x
    gender x age band x duration band, from frame.margins: what calibration rakes to and where
    the population's mix comes from. ``draw_id`` is the draw that counted it."""

    __tablename__ = "population_cell"

    round_id: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    kommunekode: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    maalgruppe: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    gender: Mapped[str] = mapped_column(sa.String(1), primary_key=True)
    age_band: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    duration_band: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    draw_id: Mapped[str] = mapped_column(sa.Text)
    population: Mapped[int]


class SampleChunk(Base):
    """The sampled citizens of one sample.drawn chunk, counted per target group x bands x design
    weight (JSON rows [maalgruppe, gender, age_band, duration_band, design_weight, citizens]):
    who could have answered, for the response rates by band and the R-indicator. Keyed by the
    chunk, so a redelivered chunk is not counted twice; counts only, no pseudonym."""

    __tablename__ = "sample_chunk"

    round_id: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    kommunekode: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    draw_id: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    chunk_no: Mapped[int] = mapped_column(primary_key=True)
    cells: Mapped[list] = mapped_column(JSONB)


class RoundCalibration(Base):
    """A round's estimation settings, set by the operator (PUT /rounds/{id}/calibration): the
    calibration's margins and bounds (domain.calibration.CalibrationSpec as JSON) and the rule
    for strata with one respondent (domain.calibration.LONELY_RULES). A round without a row uses
    the defaults."""

    __tablename__ = "round_calibration"

    round_id: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    spec: Mapped[dict] = mapped_column(JSONB)
    lonely: Mapped[str] = mapped_column(sa.Text)
    updated_by: Mapped[str] = mapped_column(sa.Text)
    updated_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), server_default=sa.func.now())

    __table_args__ = (sa.CheckConstraint("lonely IN ('adjust', 'certainty', 'average')", name="round_calibration_lonely"),)


class Invited(Base):
    __tablename__ = "invited"

    round_id: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    pseudonym: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    kommunekode: Mapped[str] = mapped_column(sa.Text)
    stratum: Mapped[str] = mapped_column(sa.Text)
    arm: Mapped[str | None] = mapped_column(sa.Text)
    first_sent_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))


class FollowupInvited(Base):
    """A citizen assigned to an arm of the round's adaptive follow-up (dispatch's rule: an extra
    message, or control), from the first invitation.sent that carries the arm, and whether the
    citizen has answered. Both handlers set ``answered`` under the round's row lock (whichever
    event comes second sees the other's row), so the response rates by follow-up arm are a
    GROUP BY of this table."""

    __tablename__ = "followup_invited"

    round_id: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    pseudonym: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    kommunekode: Mapped[str] = mapped_column(sa.Text)
    stratum: Mapped[str] = mapped_column(sa.Text)
    maalgruppe: Mapped[str] = mapped_column(sa.Text)
    followup_arm: Mapped[str] = mapped_column(sa.Text)
    first_sent_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))
    answered: Mapped[bool] = mapped_column(sa.Boolean, default=False)


class ResponseFact(Base):
    __tablename__ = "response_fact"

    round_id: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    pseudonym: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    kommunekode: Mapped[str] = mapped_column(sa.Text)
    stratum: Mapped[str] = mapped_column(sa.Text)
    maalgruppe: Mapped[str] = mapped_column(sa.Text)
    gender: Mapped[str] = mapped_column(sa.String(1))
    age_band: Mapped[str] = mapped_column(sa.Text)
    duration_band: Mapped[str] = mapped_column(sa.Text)
    design_weight: Mapped[float]
    arm: Mapped[str | None] = mapped_column(sa.Text)
    mode: Mapped[str] = mapped_column(sa.Text)
    language: Mapped[str] = mapped_column(sa.Text, server_default="da")
    questionnaire_id: Mapped[str] = mapped_column(sa.Text)
    questionnaire_version: Mapped[int]
    answers: Mapped[dict] = mapped_column(JSONB)
    submitted_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))
    # The round version of the transaction that counted this fact (RoundState.version; facts
    # tagged up to a version are exactly those counted in the tallies at that version): a
    # publication builder holding a round's counts reads only the facts counted since.
    version: Mapped[int] = mapped_column(sa.BigInteger, server_default="0")

    __table_args__ = (sa.Index("ix_response_fact_round_version", "round_id", "version"),)


class AnswerTally(Base):
    """Answers per round x stratum x bands x question x answer code (see domain.answers)."""

    __tablename__ = "answer_tally"

    round_id: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    stratum: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    gender: Mapped[str] = mapped_column(sa.String(1), primary_key=True)
    age_band: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    duration_band: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    question: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    code: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    kommunekode: Mapped[str] = mapped_column(sa.Text)
    maalgruppe: Mapped[str] = mapped_column(sa.Text)
    n: Mapped[int]


class RateTally(Base):
    """Invited and answered per round x stratum x dispatch arm ("none" without an experiment) x
    answer mode x language. The invited are counted on the rows with mode and language "" (a
    citizen is invited before anyone knows how they will answer), the answered on the rows of the
    mode (web, paper, phone) and language they answered in."""

    __tablename__ = "rate_tally"

    round_id: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    stratum: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    arm: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    mode: Mapped[str] = mapped_column(sa.Text, primary_key=True, server_default="")
    language: Mapped[str] = mapped_column(sa.Text, primary_key=True, server_default="")
    kommunekode: Mapped[str] = mapped_column(sa.Text)
    maalgruppe: Mapped[str] = mapped_column(sa.Text)
    invited: Mapped[int] = mapped_column(server_default="0")
    answered: Mapped[int] = mapped_column(server_default="0")


class RoundState(Base):
    __tablename__ = "round_state"

    round_id: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    questionnaire_id: Mapped[str | None] = mapped_column(sa.Text)
    first_submitted_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    version: Mapped[int] = mapped_column(sa.BigInteger, server_default="0")
    # The version at which the tallies last changed otherwise than by new facts (an erasure):
    # counts a builder holds from before it are reloaded in full.
    counts_reset_version: Mapped[int] = mapped_column(sa.BigInteger, server_default="0")


class PublicationRelease(Base):
    """A round's published tables as released: built and suppressed at one round version,
    numbered 1, 2, 3 ... per round. Reads are served the round's latest release; a release is
    never changed once written (see service.Releases)."""

    __tablename__ = "publication_release"

    round_id: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    release: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    # The round version (RoundState.version) of the snapshot the release was built from.
    version: Mapped[int] = mapped_column(sa.BigInteger)
    phase: Mapped[str] = mapped_column(sa.Text)  # preliminary | final
    built_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))
    # The RoundPublication (suppressed aggregates only), pickled and zlib-compressed.
    publication: Mapped[bytes] = mapped_column(BYTEA)
    # The publication classes' layout the pickle was written with (service.LAYOUT): a release
    # written under another layout is released again (from its baseline) rather than misread.
    layout: Mapped[str] = mapped_column(sa.Text)
    # What the next release of the round is built with (domain Baseline.to_json()): what this and
    # earlier releases published, so the next cannot be differenced against them.
    baseline: Mapped[dict | None] = mapped_column(JSONB, nullable=True)

    __table_args__ = (
        sa.CheckConstraint("phase IN ('preliminary', 'final')", name="publication_release_phase"),
        sa.CheckConstraint("release > 0", name="publication_release_number"),
    )
