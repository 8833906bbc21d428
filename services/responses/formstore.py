"""The citizen's form on the hot path: a link read in one statement, and a submission (spend the
link + store the answers + write response.submitted to the outbox) in one statement.

Why not the unit of work here: an ORM unit of work is BEGIN, the statements one by one (each
through the ORM) and COMMIT: several round trips and milliseconds of CPU per submit, for what
PostgreSQL can do atomically in one statement. This store holds its own small asyncpg
pool (prepared statements cached per connection, no per-checkout ping: a dead connection fails
the statement, and asyncpg's pool replaces it) and runs single statements in autocommit, each of
which is its own transaction.

Nothing is weakened: the spend is still the conditional UPDATE (``status = 'open'`` and not
expired) that decides alone, so a double click or a second tab cannot submit twice; the answer
row and the outbox row are inserted from that UPDATE's result in the same statement, so they
commit with the spend or not at all, and the outbox relay publishes the event as for any other.
Everything else (drafts, opt-out, paper entry, admin) keeps using the unit of work.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from types import SimpleNamespace

import asyncpg
import sqlalchemy as sa

from services.responses.config import ResponsesSettings
from services.responses.domain import LocalSupplement, Questionnaire, QuestionnaireError
from services.responses.models import BUS, Respondent, Response, RoundState
from services.responses.questionnaires import build_for_key, offered_questionnaire
from services.responses.domain.rounds import closed_sql
from services.responses.service import LinkExpired, LinkUsed, UnknownLink, ensure_round_open, hash_token
from shared.bus.outbox import wrap_for_outbox
from shared.events import Bands, ResponseSubmitted

_RESPONDENT = [column.name for column in Respondent.__table__.columns]
_R = Respondent.__table__.fullname
_RQ = "responses.round_questionnaire"
_RS = RoundState.__table__.fullname
_RESPONSE = Response.__table__.fullname
_OUTBOX = BUS.outbox.fullname

# The link, its round's phase, end and languages (NULL: no definition yet), and (only while no
# questionnaire is fixed yet) the round's configuration with this municipality's supplement
# version: one round trip for every page view.
FIND = f"""
SELECT {", ".join(f"r.{name}" for name in _RESPONDENT)},
       s.phase AS round_phase, s.fieldwork_ends_at AS round_ends_at,
       s.definition -> 'languages' AS round_languages, s.definition ->> 'translation_status' AS round_translation_status,
       c.round_id IS NOT NULL AS cfg_present, c.core AS cfg_core, c.modules::text AS cfg_modules,
       (c.supplements ->> r.kommunekode)::int AS cfg_supplement
  FROM {_R} r
  LEFT JOIN {_RS} s ON s.round_id = r.round_id
  LEFT JOIN {_RQ} c ON r.questionnaire_key IS NULL AND c.round_id = r.round_id
 WHERE r.token_hash = $1
"""

# First opening: fix the questionnaire version. Two tabs at once agree on one (the other one's
# UPDATE matches no row and it reads what the first fixed).
FIX = f"""
WITH fixed AS (
    UPDATE {_R} SET questionnaire_key = $2, opened_at = $3
     WHERE token_hash = $1 AND questionnaire_key IS NULL
    RETURNING questionnaire_key
)
SELECT questionnaire_key FROM fixed
UNION ALL
SELECT questionnaire_key FROM {_R} WHERE token_hash = $1 AND NOT EXISTS (SELECT 1 FROM fixed)
"""

# The submission. The UPDATE is the one place that decides (open, not expired, its round's
# fieldwork not over); the answer and the event are inserted from its result, so all three
# commit together or not at all.
SUBMIT = f"""
WITH spent AS (
    UPDATE {_R} AS r SET status = 'submitted', finished_at = $2, draft = '{{}}'::jsonb
     WHERE token_hash = $1 AND status = 'open' AND expires_at > $2
       AND NOT EXISTS (SELECT 1 FROM {_RS} AS s WHERE s.round_id = r.round_id AND {closed_sql("s", "$2")})
    RETURNING token_hash
), answer AS (
    INSERT INTO {_RESPONSE} (id, token_hash, questionnaire_id, questionnaire_version, questionnaire_key,
                             mode, language, entered_by, answers, submitted_at)
    SELECT $3, token_hash, $4, $5, $6, 'web', $12, NULL, $7::jsonb, $2 FROM spent
), event AS (
    INSERT INTO {_OUTBOX} (event_id, topic, key, envelope)
    SELECT $8, $9, $10, $11::jsonb FROM spent
)
SELECT count(*) FROM spent
"""

SUPPLEMENT = "SELECT definition::text FROM responses.local_supplement WHERE kommunekode = $1 AND version = $2"


def _json(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


async def _link_row(connection, token: str):
    """The link's row with its round's state (FIND); UnknownLink if there is none."""
    row = await connection.fetchrow(FIND, hash_token(token))
    if row is None:
        raise UnknownLink()
    return row


def _respondent(row: asyncpg.Record) -> Respondent:
    """The row with the attributes of a Respondent (a plain object: building an ORM instance per
    page view costs more than the query; it is only read, never added to a session)."""
    link = SimpleNamespace(**{name: row[name] for name in _RESPONDENT})
    link.draft = json.loads(link.draft) if link.draft is not None else {}
    # What the round offers (round.defined; None: not defined, or no choice made).
    link.round_languages = json.loads(row["round_languages"]) if row["round_languages"] is not None else None
    link.round_translation_status = row["round_translation_status"]
    return link  # type: ignore[return-value]


def _ensure_open(row: asyncpg.Record, respondent: Respondent) -> None:
    """The rules of ``service.open_link``: spent, then the round's end, then the link's expiry."""
    if respondent.status != "open":
        raise LinkUsed(respondent.status)
    now = datetime.now(UTC)
    ensure_round_open(row["round_phase"], row["round_ends_at"], now)
    if respondent.expires_at <= now:
        raise LinkExpired()


def dsn_of(engine: sa.ext.asyncio.AsyncEngine) -> str:
    url = engine.url.set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


async def _reset(connection: asyncpg.Connection) -> None:
    # Only single autocommit statements run here, so there is no session state to reset; a
    # statement cancelled half-way (client gone) can leave nothing open but is rolled back anyway.
    if connection.is_in_transaction():
        await connection.execute("ROLLBACK")


class FormStore:
    def __init__(self, pool: asyncpg.Pool, settings: ResponsesSettings, on_commit=None) -> None:
        self._pool = pool
        self._settings = settings
        self._on_commit = on_commit

    @classmethod
    async def connect(cls, dsn: str, settings: ResponsesSettings, on_commit=None) -> FormStore:
        pool = await asyncpg.create_pool(
            dsn,
            min_size=min(2, settings.form_pool_size),
            max_size=settings.form_pool_size,
            reset=_reset,
            server_settings={"application_name": f"{settings.service_name}-form"},
        )
        return cls(pool, settings, on_commit)

    async def close(self) -> None:
        await self._pool.close()

    async def _fetch_supplement(self, connection: asyncpg.Connection, kommunekode: str, version: int) -> LocalSupplement:
        definition = await connection.fetchval(SUPPLEMENT, kommunekode, version)
        if definition is None:
            raise QuestionnaireError(f"no local supplement {kommunekode} version {version}")
        return LocalSupplement.model_validate_json(definition)

    async def find(self, token: str) -> Respondent:
        """The link in any state (for the receipt pages); UnknownLink if there is none."""
        async with self._pool.acquire() as connection:
            return _respondent(await _link_row(connection, token))

    async def open_link(self, token: str) -> Respondent:
        """An open link (the rules of ``service.open_link``), without its questionnaire."""
        async with self._pool.acquire() as connection:
            row = await _link_row(connection, token)
        respondent = _respondent(row)
        _ensure_open(row, respondent)
        return respondent

    async def open_survey(self, token: str) -> tuple[Respondent, Questionnaire]:
        """An open link and its questionnaire, fixing the questionnaire version on first use:
        the same rules as ``service.open_survey``, in one statement (two on first opening)."""
        async with self._pool.acquire() as connection:
            row = await _link_row(connection, token)
            respondent = _respondent(row)
            _ensure_open(row, respondent)

            async def fetch(kommunekode: str, version: int) -> LocalSupplement:
                return await self._fetch_supplement(connection, kommunekode, version)

            if respondent.questionnaire_key is None:
                config = None
                if row["cfg_present"]:
                    config = (row["cfg_core"], tuple(json.loads(row["cfg_modules"] or "[]")), row["cfg_supplement"])
                offered = await offered_questionnaire(self._settings, config, respondent.kommunekode, fetch)
                now = datetime.now(UTC)
                respondent.questionnaire_key = await connection.fetchval(FIX, respondent.token_hash, offered.version_key, now)
                if respondent.questionnaire_key == offered.version_key:
                    respondent.opened_at = now
                    return respondent, offered
            return respondent, await build_for_key(respondent.questionnaire_key, fetch)  # type: ignore[arg-type]

    async def submit(
        self, token: str, respondent: Respondent, questionnaire: Questionnaire, clean: Mapping[str, object],
        *, language: str = "da",
    ) -> None:
        """Spend the link, store the (validated, scrubbed) web answers, in ``language`` (the
        page's), and write response.submitted to the outbox, atomically. Raises LinkUsed / LinkExpired / UnknownLink when the link
        could not be spent (a double click, a second tab, the deadline)."""
        now = datetime.now(UTC)
        event = ResponseSubmitted(
            round_id=respondent.round_id,
            kommunekode=respondent.kommunekode,
            pseudonym=respondent.pseudonym,
            questionnaire_id=questionnaire.id,
            questionnaire_version=questionnaire.version,
            mode="web",
            maalgruppe=respondent.maalgruppe,
            stratum=respondent.stratum,
            bands=Bands(gender=respondent.gender, age_band=respondent.age_band, duration_band=respondent.duration_band),
            design_weight=respondent.design_weight,
            arm=respondent.arm,
            answers=dict(clean),
            submitted_at=now,
            language=language,
        )
        # The same envelope and outbox row as UnitOfWork.publish + flush_events write.
        envelope = wrap_for_outbox(event, source=self._settings.service_name)
        async with self._pool.acquire() as connection:
            spent = await connection.fetchval(
                SUBMIT,
                hash_token(token),
                now,
                uuid.uuid4(),
                questionnaire.id,
                questionnaire.version,
                questionnaire.version_key,
                _json(dict(clean)),
                envelope.event_id,
                event.topic,
                event.key(),
                envelope.model_dump_json(),
                language,
            )
            if not spent:
                row = await connection.fetchrow(FIND, hash_token(token))
                if row is None:
                    raise UnknownLink()
                _ensure_open(row, _respondent(row))
                raise LinkExpired()
        if self._on_commit is not None:
            self._on_commit()
