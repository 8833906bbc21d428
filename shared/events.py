"""Event envelope and payload contracts: the single source of truth for what crosses the bus.

Every message on Kafka is an :class:`Envelope` serialised as JSON. ``type`` + ``version``
select the payload model in :data:`REGISTRY`; a consumer that meets a version it does not know
dead-letters the message rather than guessing. Payloads only ever grow by optional fields within a
version; anything else is a new version, published side by side until consumers have moved.

Each event names its topic and its key. The key decides the partition, so all events with the
same key keep their order: population and sample chunks are keyed by round and municipality (a
re-delivery never overtakes the delivery it replaces), per-citizen events by pseudonym.

No payload carries a CPR number in clear. The one piece of personal data that must reach dispatch
travels sealed (see :mod:`shared.crypto`), and only for sampled citizens (``contacts.released``).

``python -m shared.events schemas DIR`` writes one JSON Schema per event for other languages.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any, ClassVar, Literal
from uuid import UUID, uuid4

from pydantic import BaseModel, ConfigDict, Field

from shared.crypto import SealedContact

Gender = Literal["M", "K"]  # K = kvinde (female), as Danish registers write it
AnswerMode = Literal["web", "paper", "phone"]
# The language the citizen answered in: a BCP 47 tag as the questionnaire's texts name it ("da", "en", "ar").
LANGUAGE_PATTERN = r"^[a-z]{2,3}(-[A-Za-z0-9]{1,8})*$"
DispatchStep = Literal["invitation", "reminder_1", "reminder_2"]
# The languages a citizen can answer in (BCP 47; "da-x-let" is easy-read Danish), in the order the
# language menu lists them: what a round may name in round.defined's ``languages``
# (docs/languages.md; responses has the texts, services/responses/domain/languages.py).
SURVEY_LANGUAGES: tuple[str, ...] = ("da", "da-x-let", "en", "ar", "uk", "tr", "so", "pl")
TranslationStatus = Literal["draft", "reviewed"]


class Envelope(BaseModel):
    """Versioned wrapper around every event's payload."""

    model_config = ConfigDict(frozen=True)

    event_id: UUID = Field(default_factory=uuid4)
    type: str
    version: int
    occurred_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    source: str
    # Follows one round (or one citizen's path) across services, for logs and tracing.
    correlation_id: str
    data: dict[str, Any]

    def payload(self) -> EventPayload:
        try:
            model = REGISTRY[(self.type, self.version)]
        except KeyError:
            raise UnknownEventError(f"unknown event {self.type!r} version {self.version}") from None
        return model.model_validate(self.data)

    @classmethod
    def wrap(cls, payload: EventPayload, *, source: str, correlation_id: str) -> Envelope:
        return cls(
            type=payload.event_type,
            version=payload.event_version,
            source=source,
            correlation_id=correlation_id,
            data=payload.model_dump(mode="json"),
        )


class UnknownEventError(ValueError):
    pass


class EventPayload(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    event_type: ClassVar[str]
    event_version: ClassVar[int]
    topic: ClassVar[str]

    def key(self) -> str:
        raise NotImplementedError


REGISTRY: dict[tuple[str, int], type[EventPayload]] = {}


def event(type_: str, version: int, *, topic: str | None = None):
    """Register a payload model for an event type and version."""

    def register(cls: type[EventPayload]) -> type[EventPayload]:
        cls.event_type = type_
        cls.event_version = version
        cls.topic = topic or type_
        if (type_, version) in REGISTRY:
            raise ValueError(f"event {type_} v{version} registered twice")
        REGISTRY[(type_, version)] = cls
        return cls

    return register


# --- background bands shared by several payloads -------------------------------------------------


class Bands(BaseModel):
    """Background variables in the broad intervals the survey reports on (never exact values)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    gender: Gender
    age_band: str
    duration_band: str  # how long the citizen has been on the current benefit


# --- population.received: ingest -> sampling ---------------------------------------------------------


class PopulationPerson(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    pseudonym: str  # keyed hash of the CPR number; the same person has the same pseudonym everywhere
    maalgruppe: str  # target group, mapped centrally from the benefit (ydelse)
    bands: Bands
    forskerbeskyttet: bool = False  # protected from statistical and scientific surveys
    deceased: bool = False  # where the extract knows it (case systems mirror the CPR register)
    emigrated: bool = False


class PopulationPersonV1(PopulationPerson):
    contact: SealedContact  # v1 carried every citizen's sealed contact through sampling


class _PopulationChunk(EventPayload):
    """The fields of population.received that every version has."""

    round_id: str
    kommunekode: str  # municipality code (3 digits, e.g. "101" Copenhagen, "751" Aarhus)
    delivery_id: UUID
    supersedes: UUID | None = None
    reference_date: date
    chunk_no: int = Field(ge=0)
    final: bool
    chunk_count: int | None = None  # set on the final chunk
    person_count: int | None = None  # set on the final chunk

    def key(self) -> str:
        return f"{self.round_id}:{self.kommunekode}"


@event("population.received", 2)
class PopulationReceived(_PopulationChunk):
    """One chunk of a municipality's validated, classified population for a round (no contact
    data: ingest keeps contacts and releases the sampled citizens' on ``contacts.released``).

    A delivery is a sequence of chunks on one key; the last has ``final`` set with the chunk count,
    so a consumer knows when it holds the whole delivery. A new delivery for the same round and
    municipality replaces the previous one (``supersedes``) once it is complete.
    """

    persons: list[PopulationPerson]


@event("population.received", 1)
class PopulationReceivedV1(_PopulationChunk):
    """Version 1: every person carried a sealed contact. Still read (consumers ignore the
    contacts), no longer published."""

    persons: list[PopulationPersonV1]


# --- sample.drawn: sampling -> dispatch, analytics, ingest ------------------------------------------


class SampledPerson(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    pseudonym: str
    maalgruppe: str
    stratum: str  # "<kommunekode>:<maalgruppe>"
    bands: Bands
    inclusion_probability: float = Field(gt=0, le=1)
    design_weight: float = Field(ge=1)


class SampledPersonV1(SampledPerson):
    contact: SealedContact  # v1 carried the sealed contact from the frame to dispatch


class StratumSummary(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    stratum: str
    maalgruppe: str
    population: int = Field(ge=0)
    sample: int = Field(ge=0)


class _SampleChunk(EventPayload):
    """The fields of sample.drawn that every version has."""

    round_id: str
    kommunekode: str
    draw_id: UUID
    seed: int
    chunk_no: int = Field(ge=0)
    final: bool
    chunk_count: int | None = None
    strata: list[StratumSummary] = Field(default_factory=list)

    def key(self) -> str:
        return f"{self.round_id}:{self.kommunekode}"


@event("sample.drawn", 2)
class SampleDrawn(_SampleChunk):
    """One chunk of a municipality's drawn sample; the final chunk carries the strata summary.

    No contact data: ingest answers each chunk with ``contacts.released`` for its persons."""

    persons: list[SampledPerson]


@event("sample.drawn", 1)
class SampleDrawnV1(_SampleChunk):
    """Version 1: each person carried the sealed contact copied from the frame. Still read
    (dispatch takes the contacts from it, ingest releases nothing for it), no longer published."""

    persons: list[SampledPersonV1]


# --- frame.margins: sampling -> analytics ------------------------------------------------------------


class PopulationCell(BaseModel):
    """How many citizens of the drawn frame fall in one target group x bands cell (a count)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    maalgruppe: str
    bands: Bands
    population: int = Field(ge=1)


@event("frame.margins", 1)
class FrameMargins(EventPayload):
    """One chunk of a municipality's population counts at the draw: the eligible frame (the
    population the round estimates for, not the sample) per target group x gender x age band x
    duration band. Analytics calibrates the design weights to these margins and reads the
    population's mix from them. Counts only: no pseudonym, CPR number or contact.

    Keyed like the municipality's sample.drawn chunks; the last chunk has ``final`` set with the
    chunk count, so a consumer knows when it holds the municipality's whole frame. Cells with no
    citizen are not sent."""

    round_id: str
    kommunekode: str
    draw_id: UUID
    chunk_no: int = Field(ge=0)
    final: bool
    chunk_count: int | None = None  # set on the final chunk
    population: int | None = Field(default=None, ge=0)  # the municipality's eligible frame, on the final chunk
    cells: list[PopulationCell]

    def key(self) -> str:
        return f"{self.round_id}:{self.kommunekode}"


# --- contacts.released: ingest -> dispatch -------------------------------------------------------------


class ReleasedContact(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    pseudonym: str
    contact: SealedContact  # readable by dispatch only


@event("contacts.released", 1)
class ContactsReleased(EventPayload):
    """The sealed contact details of one ``sample.drawn`` chunk's persons, for dispatch.

    Ingest keeps every delivered citizen's contact sealed in its own store and releases only the
    sampled citizens', so unsampled citizens' contact data never leave ingest. A sampled
    pseudonym ingest no longer holds (erased, objected, or not in the municipality's current
    delivery) is listed in ``missing``: dispatch never contacts that citizen. Keyed like the
    sample chunk it answers.
    """

    round_id: str
    kommunekode: str
    draw_id: UUID
    chunk_no: int = Field(ge=0)  # the sample.drawn chunk answered
    contacts: list[ReleasedContact]
    missing: list[str] = Field(default_factory=list)  # pseudonyms

    def key(self) -> str:
        return f"{self.round_id}:{self.kommunekode}"


# --- link.issued: dispatch -> responses ----------------------------------------------------------------


@event("link.issued", 1)
class LinkIssued(EventPayload):
    """A citizen's survey link exists; responses learns only the hash of its token."""

    round_id: str
    kommunekode: str
    pseudonym: str
    token_hash: str  # hex SHA-256 of the link token; the token itself never leaves dispatch
    maalgruppe: str
    stratum: str
    bands: Bands
    design_weight: float
    arm: str | None = None  # response-rate experiment arm, if the round runs one
    expires_at: datetime
    # Printed on the citizen's paper questionnaire (shared.answer_id); the paper entry finds the
    # link by it. None from a dispatch that gave none.
    answer_id: str | None = None

    def key(self) -> str:
        return self.pseudonym


# --- interview.phones_released: dispatch -> responses ---------------------------------------------------


class ReleasedPhone(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    pseudonym: str
    phone: SealedContact  # the phone number alone, sealed for responses (shared.crypto.seal_phone)


@event("interview.phones_released", 1)
class InterviewPhonesReleased(EventPayload):
    """Phone numbers of sampled citizens whose round offers interviews by phone, for the
    interviewer's page in responses. Dispatch opens the contacts ingest released, takes the phone
    number alone (no CPR number, no name) and seals it again under the interview key, which only
    dispatch and responses hold. Citizens without a phone number are not listed. Keyed like the
    ``contacts.released`` chunk it comes from."""

    round_id: str
    kommunekode: str
    phones: list[ReleasedPhone]

    def key(self) -> str:
        return f"{self.round_id}:{self.kommunekode}"


# --- invitation.sent: dispatch -> analytics --------------------------------------------------------------


@event("invitation.sent", 1)
class InvitationSent(EventPayload):
    round_id: str
    kommunekode: str
    pseudonym: str
    step: DispatchStep
    channel: str
    maalgruppe: str
    stratum: str
    arm: str | None = None
    sent_at: datetime
    # The citizen's adaptive follow-up arm (followup_extra | followup_control), on every message
    # sent after the round's follow-up rule assigned it; None: not assigned (docs/rounds.md).
    followup_arm: str | None = None

    def key(self) -> str:
        return self.pseudonym


# --- response.submitted: responses -> dispatch, analytics -----------------------------------------------


AnswerValue = int | str | None


@event("response.submitted", 1)
class ResponseSubmitted(EventPayload):
    round_id: str
    kommunekode: str
    pseudonym: str
    questionnaire_id: str
    questionnaire_version: int
    mode: AnswerMode
    maalgruppe: str
    stratum: str
    bands: Bands
    design_weight: float
    arm: str | None = None
    # Question id -> answer: a scale value code, or free text already scrubbed of personal data.
    answers: dict[str, AnswerValue]
    submitted_at: datetime
    language: str = Field(default="da", pattern=LANGUAGE_PATTERN)  # absent in older events: Danish

    def key(self) -> str:
        return self.pseudonym


@event("response.opted_out", 1)
class ResponseOptedOut(EventPayload):
    """The citizen said no thanks: dispatch stops reminders, analytics counts a refusal."""

    round_id: str
    kommunekode: str
    pseudonym: str
    stratum: str
    opted_out_at: datetime

    def key(self) -> str:
        return self.pseudonym


# --- the round: one definition, owned by ingest, followed by every service ----------------------------

# A round's lifecycle. Each step is one operator action or a date passing; ingest owns the round
# and is the only service that moves it (docs/rounds.md).
RoundPhase = Literal[
    "planned",  # defined; no delivery yet
    "collecting_extracts",  # vendors deliver population extracts
    "sample_drawn",  # sampling has drawn; dispatch has planned, nothing is sent
    "fieldwork_scheduled",  # the operator has confirmed the send dates; nothing goes out before invitation_at
    "in_fieldwork",  # invitation_at has passed: letters, reminders and answers
    "fieldwork_ended",  # fieldwork_ends_at has passed, or the operator ended it early: no sending, no submits
    "closed",  # the retention clock runs (round.purge_requested follows after retention_days)
    "purged",
]
ROUND_PHASES: tuple[str, ...] = RoundPhase.__args__
# A round's id: what ingest accepts when a round is defined (POST /rounds) and what every
# service's routes take (shared.app.RoundId).
ROUND_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
# Phases in which fieldwork is over: nothing is sent and no answer is taken in.
FIELDWORK_OVER_PHASES: tuple[str, ...] = ("fieldwork_ended", "closed", "purged")


def fieldwork_over(phase: str | None, fieldwork_ends_at: datetime | None, now: datetime) -> bool:
    """Whether a round's fieldwork is over at ``now``: its phase says so, or its end has passed
    (before the phase clock has moved it). ``phase`` None: the round is not defined (open)."""
    if phase is None:
        return False
    return phase in FIELDWORK_OVER_PHASES or (fieldwork_ends_at is not None and now >= fieldwork_ends_at)


class SendingWindow(BaseModel):
    """When messages may go out, in Danish local time (Europe/Copenhagen): no SMS at night."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    start: time = time(8, 0)
    end: time = time(20, 0)


@event("round.defined", 1)
class RoundDefined(EventPayload):
    """A round's whole definition and phase, sent again on every change (state transfer).

    Keyed by round, so one round's revisions keep their order; a consumer keeps the highest
    ``revision`` it has seen and ignores a lower or equal one (a replay). A service that has no
    definition of a round refuses work for it with a 4xx naming the round. Times are UTC;
    ``None`` means not decided yet (nothing is sent while ``invitation_at`` is ``None``)."""

    round_id: str
    revision: int = Field(ge=1)
    name: str
    reference_date: date
    maalgruppe_mapping_version: str  # target-group mapping (ingest's maalgrupper_v*.json)
    questionnaire_version: str | None = None
    kommuner: list[str] = Field(default_factory=list)  # participating kommunekoder; empty: all 98
    delivery_deadline: datetime | None = None
    invitation_at: datetime | None = None
    reminders_at: list[datetime] = Field(default_factory=list, max_length=2)  # reminder_1, reminder_2
    fieldwork_ends_at: datetime | None = None
    sending_window: SendingWindow = SendingWindow()
    retention_days: int = Field(ge=1)
    phase: RoundPhase
    phase_changed_at: datetime
    implicit: bool = False  # a round that existed before rounds were defined, given a default definition
    # The languages citizens may answer in (BCP 47 codes, services/responses/domain/languages.py);
    # empty: every language whose translation meets ``translation_status``. Danish always.
    languages: list[str] = Field(default_factory=list, max_length=20)
    # The review status a translation needs to be offered: "reviewed" offers only translations a
    # person has checked; "draft" also drafts nobody has checked yet.
    translation_status: TranslationStatus = "draft"

    def key(self) -> str:
        return self.round_id


# --- the round's overview: each service's counts of a round (analytics keeps the latest) ------------
#
# State transfer, like round.defined: each event is a whole snapshot of what its source counts,
# never a delta, so a replay or a duplicate changes nothing and a consumer keeps the latest
# (by ``as_of``; a delivery by its id). Counts only: no pseudonym, CPR number, name or phone.


@event("delivery.accepted", 1)
class DeliveryAccepted(EventPayload):
    """A municipality's delivery for a round, as ingest accepted it: its row counts, who
    delivered it (the case system's client) and when. It replaces ``supersedes``, the
    municipality's previous delivery. Keyed like the delivery's population chunks."""

    round_id: str
    kommunekode: str
    delivery_id: UUID
    supersedes: UUID | None = None
    delivered_by: str  # the delivering client's id (a case-system vendor), never a person
    rows_read: int = Field(ge=0)
    rows_valid: int = Field(ge=0)  # accepted: the citizens stored and sent to sampling
    rows_rejected: int = Field(ge=0)  # rows with errors
    rows_excluded: int = Field(ge=0)  # valid rows outside the survey population
    exclusions: dict[str, int] = Field(default_factory=dict)  # reason -> rows
    maalgrupper: dict[str, int] = Field(default_factory=dict)  # target group -> citizens
    accepted_at: datetime

    def key(self) -> str:
        return f"{self.round_id}:{self.kommunekode}"


class SamplingMunicipality(BaseModel):
    """One municipality's frame, allocation and (once drawn) sample."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kommunekode: str
    population: int = Field(ge=0)  # citizens in the delivered frame
    excluded: dict[str, int] = Field(default_factory=dict)  # reason -> citizens (first reason)
    eligible: int = Field(ge=0)
    sample: int = Field(ge=0)
    expected_answers: float = Field(ge=0)
    capped: bool = False  # the operator's max_sample won over the answer rule here


@event("sampling.progress", 1)
class SamplingProgress(EventPayload):
    """A round's frame, allocation and draw as sampling holds them, sent on every change to the
    allocation (preview, overrides, confirmation) and with the draw. ``stage`` says which;
    ``min_expected_answers`` is the answer target the allocation aims at (200)."""

    round_id: str
    stage: Literal["proposed", "confirmed", "drawn"]
    draw_id: UUID | None = None
    forced: bool = False  # drawn before the round was ready (recorded at sampling)
    max_sample: int | None = None
    min_expected_answers: float = Field(ge=0)
    municipalities: list[SamplingMunicipality]
    as_of: datetime

    def key(self) -> str:
        return self.round_id


class DispatchStepCount(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    kommunekode: str
    step: DispatchStep
    channel: str
    status: str  # as dispatch's GET /rounds/{id}/status shows it
    count: int = Field(ge=0)


class DispatchContactCount(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    kommunekode: str
    waiting: int = Field(ge=0)  # invitations whose contact ingest has not released yet
    no_contact: int = Field(ge=0)  # invitations ingest had no contact for (never sent)


@event("dispatch.progress", 1)
class DispatchProgress(EventPayload):
    """A round's messages per municipality, step, channel and status, as dispatch's status
    shows them, sent whenever they change (dispatch looks every few seconds)."""

    round_id: str
    sending: str  # dispatch's sending state of the round (GET /rounds/{id}/status)
    steps: list[DispatchStepCount]
    contacts: list[DispatchContactCount] = Field(default_factory=list)
    as_of: datetime

    def key(self) -> str:
        return self.round_id


# --- privacy: retention and data-subject requests (ingest coordinates, every service obeys) ------------


PrivacyService = Literal["ingest", "sampling", "dispatch", "responses", "analytics"]


@event("round.purge_requested", 1)
class RoundPurgeRequested(EventPayload):
    """A closed round's retention period has run out: delete its identifiers everywhere.

    After the purge the answers that remain are anonymous: no CPR ciphertext, name, phone number,
    sealed contact, pseudonym or token-to-person link of the round is left in any service."""

    round_id: str
    closed_at: datetime
    requested_at: datetime

    def key(self) -> str:
        return self.round_id


@event("round.purged", 1)
class RoundPurged(EventPayload):
    """One service's receipt for a purge: what it deleted and that a check found nothing left."""

    round_id: str
    service: PrivacyService
    removed: dict[str, int]  # table (or store) -> rows deleted or anonymised
    verified: bool  # a query after the purge found no identifier of the round left
    purged_at: datetime

    def key(self) -> str:
        return self.round_id


@event("citizen.erasure_requested", 1)
class CitizenErasureRequested(EventPayload):
    """A citizen's objection or erasure request, entered by an operator at ingest.

    Carries the citizen's pseudonyms (one per pseudonym key still in use), never the CPR number.
    ``objection`` also keeps the citizen out of every future extract (ingest's block list)."""

    request_id: UUID
    kind: Literal["erasure", "objection"]
    pseudonyms: list[str]
    requested_at: datetime

    def key(self) -> str:
        return str(self.request_id)


@event("citizen.erased", 1)
class CitizenErased(EventPayload):
    """One service's receipt for an erasure request."""

    request_id: UUID
    service: PrivacyService
    removed: dict[str, int]
    verified: bool
    erased_at: datetime

    def key(self) -> str:
        return str(self.request_id)


# --- questionnaire.offered: responses -> dispatch (the paper questionnaire) -------------------------


class PrintedOption(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    value: str  # the option code the paper entry keys in
    label: str


class PrintedQuestion(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    kind: str  # likert5 | single_choice | free_text
    text: str
    help: str | None = None
    options: list[PrintedOption] = Field(default_factory=list)  # empty for free text
    max_length: int | None = None


class PrintedTheme(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    title: str
    questions: list[PrintedQuestion]


class PrintedQuestionnaire(BaseModel):
    """One language of a questionnaire, flattened for print: every text in that language, or
    the Danish text where the translation lacks it (``fallback_to_da`` names those questions)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    language: str
    title: str
    themes: list[PrintedTheme]
    fallback_to_da: list[str] = Field(default_factory=list)


class OfferedQuestionnaire(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    version_key: str  # e.g. kl_core@1+lokal_751@2: what the paper entry validates against
    languages: dict[str, PrintedQuestionnaire]  # "da" always
    # The languages the round offers its citizens on the web, in menu order (Danish first):
    # round.defined's ``languages`` whose translations meet its ``translation_status``. The letters
    # list these. Empty from a responses that did not say: every language in ``languages``.
    offered_languages: list[str] = Field(default_factory=list, max_length=20)


@event("questionnaire.offered", 1)
class QuestionnaireOffered(EventPayload):
    """The questionnaire a round offers today, in every language it has, for print: ``"*"`` for
    every municipality without a supplement of its own, and one entry per municipality with
    one. The whole state, sent again whenever the round's definition or questionnaire changes;
    a consumer keeps the latest ``offered_at``. No personal data."""

    round_id: str
    offered_at: datetime
    questionnaires: dict[str, OfferedQuestionnaire]

    def key(self) -> str:
        return self.round_id


# --- JSON Schema export ------------------------------------------------------------------------------------


def json_schemas() -> dict[str, dict]:
    """One JSON Schema per event (envelope with its typed ``data``), named ``<type>.v<version>``."""
    schemas: dict[str, dict] = {}
    envelope = Envelope.model_json_schema()
    for (type_, version), model in sorted(REGISTRY.items()):
        data_schema = model.model_json_schema(ref_template="#/$defs/{model}")
        defs = data_schema.pop("$defs", {})
        schema = {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": f"https://borgerblik.dk/events/{type_}.v{version}.json",
            "title": f"{type_} v{version}",
            "description": (model.__doc__ or "").strip(),
            "type": "object",
            "properties": {
                **envelope["properties"],
                "type": {"const": type_},
                "version": {"const": version},
                "data": data_schema,
            },
            "required": ["event_id", "type", "version", "occurred_at", "source", "correlation_id", "data"],
            "additionalProperties": False,
            "x-kafka-topic": model.topic,
            "$defs": defs,
        }
        schemas[f"{type_}.v{version}"] = schema
    return schemas


def write_json_schemas(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, schema in json_schemas().items():
        path = directory / f"{name}.json"
        path.write_text(json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")
        written.append(path)
    return written


TOPICS: tuple[str, ...] = tuple(sorted({model.topic for model in REGISTRY.values()}))


if __name__ == "__main__":  # python -m shared.events schemas DIR
    if len(sys.argv) != 3 or sys.argv[1] != "schemas":
        sys.exit("usage: python -m shared.events schemas DIR")
    for path in write_json_schemas(Path(sys.argv[2])):
        print(path)
