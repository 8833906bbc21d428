"""Generate docs/data-map.md from the code: every table and column of every service, the personal
data among them, and the personal-data fields of every event on the bus (issue 10, GDPR art. 30).

The classification below is a reviewed mapping: a column (or event field) the mapping does not know
is printed as REVIEW, and tests/security/test_data_map.py fails until someone classifies it. The
test also fails when docs/data-map.md differs from what this script writes.

    .venv/bin/python tools/data_map.py            # rewrite docs/data-map.md
    .venv/bin/python tools/data_map.py --check    # exit 1 if stale or anything is unclassified
"""

from __future__ import annotations

import importlib
import sys
import typing
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

OUTPUT = ROOT / "docs" / "data-map.md"
SERVICES = ("ingest", "sampling", "dispatch", "responses", "analytics")
REVIEW = "REVIEW"
RETENTION = "until the round closes + RETENTION_DAYS (default 90): then deleted or anonymised by round.purge_requested, verified, receipt to ingest"
RETENTION_REFERENCE = "kept for reuse (not per citizen); no retention rule yet"
DASHBOARD_SESSION_RETENTION = "until the session ends (logout, 8 h, 30 min idle), then purged within DASHBOARD_SESSION_PURGE_INTERVAL_SECONDS"


@dataclass(frozen=True)
class Personal:
    category: str
    protection: str  # encrypted / hashed / pseudonymous / none
    purpose: str
    retention: str = RETENTION


# --- personal data, by column name (applies in every service unless overridden below) ---------------------

PERSONAL_BY_NAME: dict[str, Personal] = {
    "cpr_ciphertext": Personal("CPR number", "encrypted (AES-256-GCM, key id beside)", "Digital Post address; dedup across municipalities"),
    "pseudonym": Personal(
        "pseudonymous identifier (HMAC-SHA256 of CPR)",
        "pseudonymous",
        "links a citizen's records across services and rounds without the CPR",
    ),
    "contact": Personal(
        "sealed contact (CPR, name, phone, Digital Post exemption)",
        "encrypted (AES-256-GCM, AAD round|pseudonym)",
        "the letter and SMS; opened only by dispatch when sending",
    ),
    # Ingest's copy, kept until the citizen is sampled (released to dispatch on contacts.released).
    "contact_sealed": Personal(
        "sealed contact (CPR, name, phone, Digital Post exemption): nonce || ciphertext",
        "encrypted (AES-256-GCM, AAD round|pseudonym, key id beside)",
        "released to dispatch (contacts.released) only if the citizen is sampled; never opened by ingest",
    ),
    "missing": Personal(
        "pseudonyms of sampled citizens whose contact ingest no longer holds (erased, objected, re-delivered without them)",
        "pseudonymous",
        "dispatch never contacts them",
    ),
    "token_hash": Personal("survey-link hash (SHA-256 of the link token)", "hashed", "finds the citizen's link without storing the token"),
    "answer_id": Personal("answer id printed on the citizen's paper questionnaire (shared.answer_id)", "pseudonymous",
                          "finds the link of a paper form keyed in (paper entry)"),
    "answer_seq": Personal("invitation number: the answer id printed on the paper questionnaire is derived from it",
                           "pseudonymous", "the paper questionnaire's answer id"),
    "token_nonce": Personal("survey-link token nonce: the minute the link was issued and 16 random bytes (re-derives the token with LINK_KEY, shared/links.py)", "none (useless without LINK_KEY)", "re-sends the same link in reminders"),
    "answers": Personal("opinions (survey answers; free text scrubbed of personal data)", "pseudonymous", "the survey's results"),
    "draft": Personal("partial opinions (saved, unsubmitted answers; free text scrubbed)", "pseudonymous", "save and resume"),
    "gender": Personal("background band: gender (from CPR)", "pseudonymous", "reporting by background; weights"),
    "age_band": Personal("background band: age interval", "pseudonymous", "reporting by background; weights"),
    "duration_band": Personal("background band: time on benefit interval", "pseudonymous", "reporting by background; weights"),
    "maalgruppe": Personal("target group (derived from benefit: reveals benefit type)", "pseudonymous", "stratification, reporting"),
    "ydelse": Personal("benefit as named by the case system (social-security data)", "none (row keyed by pseudonym)", "target-group mapping audit"),
    "stratum": Personal("stratum (municipality:target group)", "pseudonymous", "design weights, reporting"),
    "forskerbeskyttet": Personal("research protection flag (CPR register)", "pseudonymous", "exclusion from the sample (law)"),
    "deceased": Personal("deceased flag", "pseudonymous", "exclusion from the sample"),
    "emigrated": Personal("emigrated flag", "pseudonymous", "exclusion from the sample"),
    "design_weight": Personal("design weight (reveals stratum size)", "pseudonymous", "weighted estimates"),
    "inclusion_probability": Personal("inclusion probability", "pseudonymous", "weighted estimates"),
    "arm": Personal("dispatch-experiment arm", "pseudonymous", "response-rate experiments"),
    "followup_arm": Personal("adaptive follow-up arm (extra message or control)", "pseudonymous",
                             "reading the effect of the adaptive follow-up on response"),
    "status": Personal("status of the citizen's link (open/submitted/opted out)", "pseudonymous", "one answer per link; stop reminders"),
    "mode": Personal("answer mode (web/paper/phone)", "pseudonymous", "mode effects; response rates by mode"),
    # A language such as Arabic or Somali hints at origin: kept with the answer, reported only
    # as suppressed counts.
    "language": Personal("language the citizen answered in (hints at origin)", "pseudonymous", "response rates and answers by language"),
    # Interviews by phone: the number alone, sealed by dispatch for responses (shared.crypto.seal_phone).
    "phone": Personal(
        "phone number of a citizen to interview (alone: no CPR number, no name)",
        "encrypted (AES-256-GCM under the interview key, AAD phone|round|pseudonym, key id beside)",
        "interviews by phone: opened only to show it on the interviewer's page, every showing audited",
        RETENTION + "; deleted with the interview row at the purge or on erasure",
    ),
    "submitted_at": Personal("time of answering", "pseudonymous", "response-rate curves"),
    "first_sent_at": Personal("time of first letter", "pseudonymous", "response-rate curves"),
    "sent_at": Personal("time a letter/SMS was sent", "pseudonymous", "reminders, response-rate curves"),
    "opted_out_at": Personal("time the citizen opted out", "pseudonymous", "stop reminders; refusal counts"),
    "finished_at": Personal("time of answering/opting out", "pseudonymous", "response-rate curves"),
    "opened_at": Personal("time the link was first opened", "pseudonymous", "paradata"),
    "last_page": Personal("questionnaire page reached", "pseudonymous", "save and resume"),
    "expires_at": Personal("link expiry", "pseudonymous", "closes the link"),
    "questionnaire_key": Personal("questionnaire version given to the citizen", "pseudonymous", "answers validated against their version"),
    "seq": Personal("position in the draw order", "pseudonymous", "reproducible sub-samples"),
    "pseudonyms": Personal(
        "pseudonyms of a citizen who asked for erasure or objected",
        "pseudonymous",
        "carries the request to every service (never the CPR)",
        "until every service has handled the request (topic retention 7 days)",
    ),
    "entered_by": Personal("operator who keyed a paper answer, or interviewer who recorded a phone interview (token subject)", "none",
                           "accountability for paper entry and interviews", RETENTION),
}

# (service, table, column) -> classification, where the name alone says too little.
PERSONAL_OVERRIDES: dict[tuple[str, str, str], Personal | None] = {
    # Per-step delivery status of a letter/SMS to one citizen (row is keyed by invitation, not by person).
    ("dispatch", "dispatch_step", "status"): Personal("delivery status of one letter/SMS", "pseudonymous", "sending, retries"),
    ("dispatch", "dispatch_step", "provider_reference"): Personal(
        "Digital Post / SMS provider reference of one message", "none", "tracing a message with the provider"
    ),
    ("dispatch", "dispatch_step", "last_error"): Personal(
        "last sending error (redacted by the sender)", "none (redacted at source)", "operators' failure list"
    ),
    ("dispatch", "dispatch_step", "sent_at"): Personal("time a message was sent", "pseudonymous", "reminders, response-rate curves"),
    ("dispatch", "dispatch_step", "skip_reason"): Personal(
        "why a message was skipped (answered/opted out/no phone/no contact released/round purged/has Digital Post/paper questionnaire instead)", "pseudonymous", "reminders"
    ),
    ("ingest", "delivery", "report"): Personal(
        "validation report: row numbers, columns, masked CPR (DDMMYY-XXXX: birth date shown)",
        "partly masked",
        "tells the municipality which rows to fix",
    ),
    ("ingest", "extract_job", "report"): Personal(
        "validation report of an uploaded file (as delivery.report)", "partly masked", "tells the municipality which rows to fix"
    ),
    ("ingest", "extract_job", "file_path"): Personal(
        "path of the uploaded extract file: CPR, names, phones IN CLEAR on disk until the job ends",
        "none (file deleted when the job ends; path cleared)",
        "background processing of large extracts",
        "until the job ends (file deleted, path cleared)",
    ),
    # Kept after the purge, for the rule "not sampled in the last N rounds" (sparing respondents).
    ("sampling", "sampled_unit", "pseudonym"): Personal(
        "pseudonymous identifier of a sampled citizen",
        "pseudonymous (no contact data, no answers: those are anonymised elsewhere)",
        "spares citizens sampled in the last N rounds",
        "while the sparing rule looks back (N rounds); erased at once on request",
    ),
    # A citizen who objected (art. 21): recognised in every later extract and left out.
    ("ingest", "blocked_citizen", "pseudonym"): Personal(
        "pseudonym of a citizen who objected (one per pseudonym key in use)",
        "pseudonymous",
        "keeps the citizen out of every future extract (the objection)",
        "while the objection stands",
    ),
    ("ingest", "privacy_request", "reference"): Personal(
        "case number of the citizen's request in the operator's system", "none (no CPR)", "accountability", "kept (audit trail)"
    ),
    # The audit log: who did what (clients and operators, not citizens); append-only.
    ("*", "audit_log", "resource"): None,
    ("*", "audit_log", "action"): None,
    ("*", "audit_log", "kind"): None,
    ("*", "audit_log", "at"): None,
    ("*", "audit_log", "correlation_id"): None,
    # Tombstones (shared/privacy.py): a purged round's id, or the SHA-256 of an erased citizen's
    # pseudonym, so that a late event cannot bring back what was purged or erased.
    ("*", "privacy_tombstone", "kind"): None,
    ("*", "privacy_tombstone", "at"): None,
    ("*", "privacy_tombstone", "ref"): Personal(
        "a purged round's id, or the SHA-256 of an erased citizen's pseudonym", "hashed (recognisable only from the pseudonym)",
        "a late sample, contact release or link does not recreate what was purged or erased", "kept (the erasure stands)",
    ),
    ("*", "audit_log", "actor"): Personal("actor: client id / operator subject", "none", "accountability (audit log)", "kept (append-only)"),
    # Statuses of non-person rows.
    ("ingest", "delivery", "status"): None,
    ("ingest", "extract_job", "status"): None,
    ("sampling", "round_allocation", "status"): None,
    ("ingest", "extract_job", "finished_at"): None,
    ("ingest", "extract_job", "file_name"): Personal(
        "name of the uploaded file as the vendor gave it", "none", "the operator's listing of a round's uploads", "kept with the job"
    ),
    ("ingest", "extract_job", "profile_spec"): None,
    ("ingest", "extract_job", "dry_run"): None,
    ("ingest", "extract_job", "confirm_replacement"): None,
    # Registered column profiles: header names of vendors' exports, no person.
    ("ingest", "column_profile", "name"): None,
    ("ingest", "column_profile", "base"): None,
    ("ingest", "column_profile", "display_name"): None,
    ("ingest", "column_profile", "columns"): None,
    # A round's name, given by KL's operator (not a person's).
    ("ingest", "round_definition", "name"): None,
    # Aggregates (counts per cell), not about one person; suppression < 5 is applied when served.
    # Sampling's frame counts per cell (kept at delivery activation): counts, no person.
    **{("sampling", "frame_cell", column): None for column in (
        "maalgruppe", "gender", "age_band", "duration_band", "forskerbeskyttet", "deceased", "emigrated",
    )},
    ("analytics", "answer_tally", "gender"): None,
    ("analytics", "answer_tally", "age_band"): None,
    ("analytics", "answer_tally", "duration_band"): None,
    ("analytics", "answer_tally", "maalgruppe"): None,
    ("analytics", "answer_tally", "stratum"): None,
    ("analytics", "rate_tally", "maalgruppe"): None,
    ("analytics", "rate_tally", "stratum"): None,
    ("analytics", "rate_tally", "arm"): None,
    ("analytics", "rate_tally", "mode"): None,  # aggregates: counts per mode and language
    ("analytics", "rate_tally", "language"): None,
    # The adaptive follow-up's citizens in analytics: one row per citizen, answered or not.
    ("analytics", "followup_invited", "answered"): Personal(
        "whether the citizen answered the survey", "pseudonymous", "response rates by adaptive follow-up arm"
    ),
    # Interviews by phone (services/responses/interviews.py): one row per citizen to call.
    ("responses", "interview", "outcome"): Personal(
        "outcome of the interview calls (refused / call back / completed)", "pseudonymous", "the interviewer's list"
    ),
    ("responses", "interview", "call_back_at"): Personal("agreed time to call the citizen again", "pseudonymous", "the interviewer's list"),
    ("responses", "interview", "calls"): Personal("number of calls made to the citizen", "pseudonymous", "the interviewer's list"),
    ("responses", "interview", "claimed_by"): Personal(
        "interviewer (token subject) who has the citizen on their page now", "none", "one interviewer per citizen at a time"
    ),
    ("responses", "interview", "claimed_until"): None,
    ("analytics", "stratum_frame", "maalgruppe"): None,
    ("analytics", "stratum_frame", "stratum"): None,
    # The population per cell (frame.margins) and the sampled counted per sample.drawn chunk by
    # target group x bands x weight: counts, no person. A round's estimation settings (margins,
    # bounds, lonely-stratum rule): configuration.
    **{("analytics", "population_cell", column): None for column in ("maalgruppe", "gender", "age_band", "duration_band")},
    **{("analytics", "sample_chunk", column): None for column in ("chunk_no", "cells")},
    **{("analytics", "round_calibration", column): None for column in ("spec", "lonely")},
    # Releases: the published tables as released (suppressed aggregates, what readers are
    # served) and the baseline of what earlier releases published (aggregates too).
    **{("analytics", "publication_release", column): None for column in ("release", "phase", "built_at", "layout", "publication", "baseline")},
    # The outbox holds events until Kafka acknowledges them (then the relay deletes the row).
    ("*", "outbox", "envelope"): Personal(
        "event payloads waiting to be published (see the topics below: pseudonyms, sealed contact, answers)",
        "as the event's fields",
        "transactional outbox",
        "until published (the relay deletes the row)",
    ),
    ("*", "bulk_outbox", "envelope"): Personal(
        "big events waiting to be published (population.received and sample.drawn chunks: pseudonyms, bands)",
        "as the event's fields",
        "transactional outbox (the envelope's text, relayed as stored)",
        "until published (the relay deletes the row)",
    ),
    ("*", "bulk_outbox", "key"): None,  # round_id:kommunekode
    ("*", "bulk_outbox", "correlation_id"): None,  # the delivery or draw id
    ("*", "bulk_outbox", "event_type"): None,
    ("*", "bulk_outbox", "event_version"): None,
    # The round overview (services/analytics/overview): counts per municipality, the delivering
    # client and the sources' snapshots of counts (delivery.accepted, sampling.progress,
    # dispatch.progress): no person in them.
    ("analytics", "overview_delivery", "accepted_at"): None,
    **{("analytics", "overview_snapshot", column): None for column in ("source", "as_of", "snapshot")},
    ("*", "outbox", "key"): Personal("event key: the pseudonym for per-citizen events", "pseudonymous", "partitioning", "until published"),
    # The dashboard's server-side sessions (services/analytics/dashboard/sessions.py): a municipal
    # user's login, not a citizen's; purged once ended.
    ("analytics", "dashboard_session", "subject"): Personal(
        "dashboard user: dev client id or the municipal user's login name (OIDC preferred_username)", "none",
        "whose session it is; logout everywhere", DASHBOARD_SESSION_RETENTION,
    ),
    ("analytics", "dashboard_session", "last_seen_at"): Personal(
        "dashboard user's last request", "none", "the idle timeout", DASHBOARD_SESSION_RETENTION,
    ),
    ("analytics", "dashboard_session", "id_hash"): None,  # SHA-256 of the cookie's random id: opens no session
    **{("analytics", "dashboard_session", column): None for column in ("scopes", "kommunekoder", "idle_seconds", "expires_at")},
    # BI keys (services/analytics/bi_keys): a BI client's credential, not a citizen's. The owner and
    # who revoked it are OAuth clients (or KL's operator); the secret is kept as its SHA-256 only.
    ("analytics", "bi_key", "secret_hash"): None,  # SHA-256 of 256 random bits: opens nothing
    **{("analytics", "bi_key", column): None for column in (
        "key_id", "owner", "label", "scopes", "kommunekoder", "expires_at", "revoked_at", "revoked_by", "last_used_at")},
}

# Columns that hold no personal data, by name: reviewed.
NOT_PERSONAL: frozenset[str] = frozenset(
    {
        "id", "round_id", "kommunekode", "reference_date", "status", "rows_read", "rows_valid", "rows_rejected",
        "rows_excluded", "supersedes", "mapping_version", "job_id", "created_at", "profile", "policy", "file_format",
        "file_bytes", "attempts", "error", "delivery_id", "started_at", "finished_at", "heartbeat_at", "event_id",
        "topic", "consumer", "outcome", "processed_at", "chunks_received", "chunk_count", "person_count", "complete",
        "active", "received_at", "rules", "recent_rounds", "overrides", "frame_counts", "updated_at", "confirmed_at",
        "seed", "allocation", "exclusions", "margins", "population", "sampled", "draw_id", "plan", "invitation_id",
        "step", "channel", "due_at", "sending_since", "claimed_by", "handed_over_at", "version", "definition", "core", "modules",
        "supplements", "questionnaire_id", "questionnaire_version", "question", "code", "n", "invited", "answered",
        "first_submitted_at", "sample", "cpr_key_id", "contact_key_id", "indicator", "value", "closed_at", "purge_after",
        "purge_requested_at", "service", "removed", "verified", "purged_at", "kind", "requested_at", "request_id",
        "erased_at", "counts_reset_version",
        # The round's definition and phase (docs/rounds.md; round.defined): dates and settings, no person.
        "revision", "published_revision", "maalgruppe_mapping_version", "kommuner", "delivery_deadline", "invitation_at",
        "reminders_at", "fieldwork_ends_at", "sending_window_start", "sending_window_end", "retention_days", "phase",
        "phase_changed_at", "implicit", "steps_cancelled_at", "interval_days", "readiness", "cap_decisions",
        "languages", "translation_status",
        # The round's questionnaire for print (questionnaire.offered): wording, no person.
        "offered_at", "questionnaires",
        # The round's adaptive follow-up rule and what it saw and chose: counts per cell, no person.
        "rule", "set_at", "applied_at", "counts", "cells", "arms",
    }
)
# Who did an administrative action: an OAuth client id or operator subject (not a citizen).
ACTOR_COLUMNS = frozenset(
    {
        "delivered_by", "submitted_by", "drawn_by", "updated_by", "confirmed_by", "set_by", "closed_by", "requested_by",
        "registered_by", "created_by", "forced_by",
    }
)

# (service, table) -> who can read the rows through an API (scopes), besides the service itself.
READERS: dict[tuple[str, str], str] = {
    ("ingest", "citizen"): "no API returns rows; ingest only",
    ("ingest", "delivery"): "report: extracts:read / extracts:write, bound to the municipality",
    ("ingest", "extract_job"): "report: extracts:read / extracts:write, bound to the municipality; every job of a round: rounds:admin",
    ("ingest", "column_profile"): "GET /profiles: any authenticated client",
    ("sampling", "frame_unit"): "no API returns rows; counts per stratum: rounds:admin",
    ("sampling", "sampled_unit"): "no API returns rows; margins: rounds:admin",
    ("dispatch", "invitation"): "no API returns rows; counts and failures: rounds:admin",
    ("dispatch", "dispatch_step"): "failures (per message, no contact data): rounds:admin",
    ("responses", "respondent"): "the citizen, through the link token (/s/…, /api/survey/…)",
    ("responses", "response"): "no API returns rows (published as response.submitted)",
    ("responses", "interview"): "the interviewer's page (GET /interview/rounds/{id}): responses:interview, bound to the municipality; one citizen at a time, every showing of a number audited",
    ("analytics", "invited"): "no API returns rows; suppressed rates: aggregates:read",
    ("analytics", "response_fact"): "no API returns rows; suppressed aggregates (n < 5 hidden): aggregates:read",
    ("analytics", "dashboard_target"): "dashboard (aggregates:read, bound to the municipality)",
    ("analytics", "dashboard_session"): "no API returns rows; the dashboard reads the caller's own session",
    ("analytics", "bi_key"): "GET /bi-keys: the maker's own keys (aggregates:read), every key for rounds:admin + kommuner:all; never the secret",
    **{("analytics", table): "the round overview: rounds:admin + kommuner:all (GET /rounds/{id}/overview, /dashboard/rounds/{id})"
       for table in ("overview_round", "overview_delivery", "overview_snapshot")},
    ("analytics", "publication_release"): "the latest release's tables: aggregates:read (a municipality sees itself and the nation); cut: rounds:admin",
    ("*", "audit_log"): "GET /audit: audit:read (a municipality-bound auditor sees its municipality's entries)",
    ("ingest", "blocked_citizen"): "no API returns rows",
    ("ingest", "privacy_request"): "GET /privacy/requests/{id}: privacy:admin + kommuner:all",
}
DEFAULT_READER = "no API returns rows"


INTERVIEWS_BY_PHONE = [
    "## Interviews by phone: where the phone number lives",
    "",
    "The phone number comes with the municipality's extract into ingest, sealed with the citizen's contact, and",
    "reaches dispatch (for SMS) on `contacts.released`, for sampled citizens only. The interviewer's page needs it",
    "next to the one fact that decides whether a citizen may still be called: whether their link is spent, which",
    "responses owns. So the number goes to responses, and only the number:",
    "",
    "- A round offers interviews through its dispatch plan (`phone_interviews`, PUT /rounds/{id}/plan, off by",
    "  default). For such a round dispatch, handling `contacts.released`, opens each contact, takes the phone",
    "  number alone and seals it again under the **interview key** (`INTERVIEW_KEYS`, held by dispatch and",
    "  responses only; AES-256-GCM, associated data `phone|round|pseudonym`), and publishes",
    "  `interview.phones_released` in the same transaction. No CPR number or name ever reaches responses; ingest's",
    "  and dispatch's contact key stays with them; citizens without a number are not listed.",
    "- Responses keeps the sealed number in `responses.interview` (one row per citizen, never in clear) beside",
    "  the link it already has. The interviewer's list is one query over its own tables: the link open (not",
    "  answered, not opted out, not expired, fieldwork not over), the calls allowing another (never called, or a",
    "  call back that is due), nobody else on the call. A web or paper answer spends the same row the list reads,",
    "  so the citizen is gone before the next call; an interview spends it with the same conditional UPDATE, so",
    "  an answer counts once, whichever mode comes first.",
    "- The number is opened only to render the interviewer's page (scope `responses:interview`, bound to",
    "  municipalities; `Cache-Control: no-store`), one citizen at a time, and every showing writes an audit row",
    "  (`kind` `phone-number-view`: who, when, the round and the interview's id; never the number). Logs carry",
    "  no number (the page's `Call` has a redacting `repr`).",
    "- The purge of a round and a citizen's erasure delete the interview rows (number, outcome, calls).",
    "",
]


def classify(service: str, table: str, column: str) -> Personal | None | str:
    """A Personal, None (not personal data), or REVIEW."""
    for key in ((service, table, column), ("*", table, column)):
        if key in PERSONAL_OVERRIDES:
            return PERSONAL_OVERRIDES[key]
    if column in ACTOR_COLUMNS:
        return Personal("actor: client id / operator subject of an admin action", "none", "accountability", RETENTION_REFERENCE)
    if column in PERSONAL_BY_NAME:
        return PERSONAL_BY_NAME[column]
    if column in NOT_PERSONAL:
        return None
    return REVIEW


# --- events ---------------------------------------------------------------------------------------------------------


def _event_fields(model, prefix: str = "") -> list[tuple[str, str]]:
    """(dotted field path, leaf name) of a pydantic model, through nested models and lists of them."""
    from pydantic import BaseModel

    out = []
    for name, field in model.model_fields.items():
        path = f"{prefix}{name}"
        nested = None
        for candidate in (field.annotation, *typing.get_args(field.annotation)):
            if isinstance(candidate, type) and issubclass(candidate, BaseModel):
                nested = candidate
        if nested is not None and nested.__name__ != "SealedContact":
            out.extend(_event_fields(nested, f"{path}[]." if typing.get_origin(field.annotation) is list else f"{path}."))
        else:
            out.append((path, name))
    return out


EVENT_NOT_PERSONAL = NOT_PERSONAL | {"final", "chunk_no", "strata", "kommunekode"}
# Event fields whose name alone says too little: (event type, field path), reviewed.
EVENT_FIELDS_NOT_PERSONAL = frozenset(
    {
        ("round.defined", "name"),  # the round's name, given by KL's operator
        ("round.defined", "sending_window.start"),
        ("round.defined", "sending_window.end"),
        # The round overview's counts (docs/rounds.md): per municipality, no person.
        ("delivery.accepted", "delivered_by"),  # the delivering case system's client id
        ("delivery.accepted", "maalgrupper"),  # target group -> citizens delivered
        ("delivery.accepted", "accepted_at"),
        # The questionnaire for print (questionnaire.offered): its wording in each language, no person.
        *(
            ("questionnaire.offered", f"questionnaires.{path}")
            for path in (
                "version_key", "languages.language", "languages.title", "languages.themes[].title",
                "languages.themes[].questions[].text", "languages.themes[].questions[].help",
                "languages.themes[].questions[].options[].label", "languages.themes[].questions[].max_length",
                "languages.fallback_to_da", "offered_languages",
            )
        ),
        *(("dispatch.progress", path) for path in ("sending", "steps[].count", "contacts[].waiting", "contacts[].no_contact", "as_of")),
        *(
            ("sampling.progress", path)
            for path in (
                "stage", "forced", "max_sample", "min_expected_answers", "municipalities[].excluded",
                "municipalities[].eligible", "municipalities[].expected_answers", "municipalities[].capped", "as_of",
            )
        ),
    }
)


def event_rows() -> tuple[list[list[str]], list[str]]:
    from shared.events import REGISTRY

    rows, unclassified = [], []
    for (type_, version), model in sorted(REGISTRY.items()):
        personal = []
        for path, name in _event_fields(model):
            if name in EVENT_NOT_PERSONAL or path.startswith("strata[].") or (type_, path) in EVENT_FIELDS_NOT_PERSONAL:
                continue
            klass = PERSONAL_BY_NAME.get(name)
            if klass is None:
                personal.append(f"{path} ({REVIEW})")
                unclassified.append(f"event {type_} v{version}: {path}")
            else:
                personal.append(f"`{path}`: {klass.category}; {klass.protection}")
        rows.append([f"`{model.topic}`", f"{type_} v{version}", "<br>".join(personal) or "none"])
    return rows, unclassified


# --- the document ---------------------------------------------------------------------------------------------------


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return lines


def build() -> tuple[str, list[str]]:
    personal_rows, unclassified, other = [], [], []
    for service in SERVICES:
        # The app module first: it imports every module that adds tables to the service's metadata
        # (e.g. a feature's own models module), so the map is the same however it is run.
        importlib.import_module(f"services.{service}.main")
        models = importlib.import_module(f"services.{service}.models")
        for table in sorted(models.Base.metadata.tables.values(), key=lambda t: t.name):
            plain = []
            for column in table.columns:
                klass = classify(service, table.name, column.name)
                if klass == REVIEW:
                    unclassified.append(f"{service}.{table.name}.{column.name}")
                    personal_rows.append([service, table.name, column.name, REVIEW, REVIEW, REVIEW, REVIEW, REVIEW])
                elif klass is None:
                    plain.append(column.name)
                else:
                    readers = READERS.get((service, table.name)) or READERS.get(("*", table.name), DEFAULT_READER)
                    if table.name in ("outbox", "bulk_outbox"):
                        readers = "the outbox relay; then the topic's consumers"
                    personal_rows.append(
                        [service, table.name, column.name, klass.category, klass.protection, klass.purpose, klass.retention, readers]
                    )
            other.append(f"- `{service}.{table.name}`: " + (", ".join(plain) if plain else "(none)"))
    topics, event_unclassified = event_rows()
    unclassified += event_unclassified

    lines = [
        "# Data map",
        "",
        "<!-- Generated by tools/data_map.py from the services' models and shared/events.py. Do not edit by hand:",
        "     change the code or the reviewed classification in tools/data_map.py, then run the script. -->",
        "",
        "Which service stores which personal data, why, how it is protected, for how long and who can read it:",
        "the basis for the records of processing (GDPR art. 30) and the data processing agreements. Each service owns",
        "one PostgreSQL schema named after it. \"Pseudonymous\" means keyed by the pseudonym (HMAC-SHA256 of the CPR",
        "number under `PSEUDONYM_KEY`, held by ingest only): personal data under GDPR, not anonymous.",
        "",
        "**Retention is not enforced yet** (issue 10): nothing deletes identifiers when a round closes today. The",
        "retention column states the intended rule.",
        "",
        "## Personal data in the databases",
        "",
        *_table(["service", "table", "column", "category", "protection", "purpose", "retention", "who can read (API scopes)"], personal_rows),
        "",
        "## Columns without personal data (reviewed)",
        "",
        *other,
        "",
        "## Personal data on the bus (Kafka topics)",
        "",
        "Every event is an envelope (`shared/events.py`) whose `data` carries the fields below; per-citizen events are",
        "keyed by pseudonym. Contact details travel only sealed (AES-256-GCM, key shared by ingest and dispatch);",
        "sampling and analytics carry or ignore the ciphertext without the key. Dead letters (`<topic>.dlq`) carry the",
        "same payloads. Topic retention is set per topic in deploy/README.md (14 days for `population.received`, 60 for",
        "`sample.drawn`, 400 for the per-citizen events): time-based, not yet tied to the round's closing.",
        "",
        *_table(["topic", "event", "personal-data fields"], topics),
        "",
        "## Personal data outside the databases",
        "",
        "- **Uploaded extract files** (ingest `UPLOAD_DIR`): CPR numbers, names and phone numbers in clear until the",
        "  upload job ends (then deleted). Protect the volume (encryption at rest, no backups of it).",
        "- **Letters** (dispatch; the dev sink writes them to `DEV_SINK_DIR`): name and survey link in clear;",
        "  production hands them to Digital Post / the SMS gateway (data processors).",
        "- **Paper questionnaires** (dispatch renders them at send time, docs/rounds.md): name, survey link (text and",
        "  QR code) and answer id in clear, printed and posted by SF1601's Fysisk Post (a data processor). The",
        "  questionnaire's wording reaches dispatch on `questionnaire.offered` (no personal data); the form comes",
        "  back by post, is keyed in against its answer id (responses, scope `responses:paper`) and then holds the",
        "  citizen's answers on paper: the municipality keeps or destroys the forms under its own records rules.",
        "- **Logs**: JSON lines; correlation ids only, contact details have a redacting `repr`. Not yet proven",
        "  free of personal data by a test (issue 10).",
        "- **Backups** of PostgreSQL and Kafka: follow the stores above; no erasure in backups yet.",
        "",
        *INTERVIEWS_BY_PHONE,
    ]
    if unclassified:
        lines += ["## Unclassified (REVIEW)", "", *[f"- {item}" for item in unclassified], ""]
    return "\n".join(lines), unclassified


def main(argv: list[str]) -> int:
    text, unclassified = build()
    if "--check" in argv:
        stale = not OUTPUT.exists() or OUTPUT.read_text(encoding="utf-8") != text
        if stale:
            print(f"{OUTPUT.relative_to(ROOT)} is stale: run tools/data_map.py")
        for item in unclassified:
            print(f"unclassified: {item}")
        return 1 if stale or unclassified else 0
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    OUTPUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUTPUT.relative_to(ROOT)}" + (f"; {len(unclassified)} unclassified (REVIEW)" if unclassified else ""))
    for item in unclassified:
        print(f"unclassified: {item}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
