"""Sampling's service functions: the frame and its exclusions, the allocation (preview, operator
overrides, confirmation) and the draw with its sample.drawn events.

The statistics live in ``services.sampling.domain`` (allocate, adjust; draw_sample is the
plain-Python reference of the draw) and ``services.sampling.draw_sql`` (the draw as PostgreSQL
runs it). This module only moves data, and as little as possible: a national frame is 500,000
rows, so the frame is counted when each delivery is activated (``services.sampling.frame``;
previews and draws sum those counts), filtered in SQL (the exclusion rule below mirrors
``domain.apply_exclusions``; the integration tests check both agree), and the draw, the
sampled_unit rows and the persons of the sample.drawn events are made inside PostgreSQL, in
the draw's transaction: no frame row makes a round trip through Python. The frame holds no
contact data, and the events carry none (sample.drawn v2: ingest releases the sampled citizens'
contacts to dispatch itself).
Python keeps the small things: the allocation over ~500 strata, the summaries and the events'
envelopes (validated by the shared models).
"""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

import sqlalchemy as sa
from pydantic import ValidationError

from services.sampling import draw_sql
from services.sampling.config import SamplingSettings
from services.sampling.domain import (
    Allocation,
    AllocationError,
    AllocationRules,
    UNIT_FLAGS,
    ExclusionReason,
    Margins,
    SampleError,
    StratumKey,
    adjust,
    allocate,
    check_seed,
    new_seed,
    reasons_for,
)
from services.sampling.domain.readiness import DRAWABLE_PHASES, draw_readiness
from services.sampling.models import AUDIT, Draw, FrameDelivery, RoundAllocation, RoundDefinition
from services.sampling.schemas import (
    AllocationRequest,
    AllocationTotals,
    AllocationView,
    AllocationWarningOut,
    CapConflictOut,
    DrawMargins,
    DrawResult,
    DrawStratum,
    FrameSummary,
    MunicipalityAllocationOut,
    MunicipalityMargins,
    OverridesRequest,
    RulesOverride,
    StratumAllocationOut,
    StratumCount,
)
from shared.audit import record
from shared.bus import UnitOfWork
from shared.events import Bands, Envelope, SampledPerson, SampleDrawn, SamplingMunicipality, SamplingProgress, StratumSummary

SCHEMA = "sampling"
REASONS = [r.value for r in ExclusionReason]  # in precedence order
BAND_VARIABLES = ("gender", "age_band", "duration_band")
# The draw statement writes the persons of sample.drawn v2 field by field (_draw_statement, no
# contact); fail at import if the contract's person or version changes under it.
assert (SampleDrawn.event_version, set(SampledPerson.model_fields), set(Bands.model_fields)) == (
    2,
    {"pseudonym", "maalgruppe", "stratum", "bands", "inclusion_probability", "design_weight"},
    set(BAND_VARIABLES),
), "sample.drawn's person changed: update _draw_statement and _person_fragments"


class DrawExists(Exception):
    pass


class EmptyFrame(Exception):
    pass


class NoAllocation(Exception):
    pass


class StaleAllocation(Exception):
    """The frame changed (a re-delivery) since the allocation was computed."""


class InvalidAllocation(Exception):
    """Rules or overrides break a hard rule; the message says which."""


class RoundNotDefined(Exception):
    """No round.defined has arrived for the round: sampling does no work for it."""


class RoundRefused(Exception):
    """The round's phase or readiness forbids the work; the message says why."""


async def require_round(uow: UnitOfWork, round_id: str, *, drawing: bool = False) -> RoundDefinition:
    """The round's definition; when ``drawing`` (an allocation or a draw), also a phase in which
    it may still be drawn."""
    definition = await uow.session.get(RoundDefinition, round_id)
    if definition is None:
        raise RoundNotDefined(round_id)
    if drawing and definition.phase not in DRAWABLE_PHASES:
        raise RoundRefused(f"round {round_id} is {definition.phase}: it is drawn only while its extracts are collected")
    return definition


def stratum_key(kommunekode: str, maalgruppe: str) -> str:
    return f"{kommunekode}:{maalgruppe}"


def parse_stratum(key: str) -> StratumKey:
    kommunekode, _, maalgruppe = key.partition(":")
    return (kommunekode, maalgruppe)


async def _raw(uow: UnitOfWork):
    """The asyncpg connection under the session, inside the session's transaction (a statement
    through the session must have run first, so that the transaction has begun)."""
    connection = await uow.session.connection()
    return (await connection.get_raw_connection()).driver_connection


# --- the frame ---------------------------------------------------------------------------------


@dataclass
class FrameCounts:
    """Counts of a round's active frame after the exclusion rules."""

    population: dict[StratumKey, int] = field(default_factory=dict)
    eligible: dict[StratumKey, int] = field(default_factory=dict)
    excluded: dict[StratumKey, dict[str, int]] = field(default_factory=dict)  # by first reason
    flags: dict[str, int] = field(default_factory=lambda: dict.fromkeys(REASONS, 0))  # every reason

    @property
    def exclusions(self) -> dict[str, int]:
        totals = dict.fromkeys(REASONS, 0)
        for per_reason in self.excluded.values():
            for reason, n in per_reason.items():
                totals[reason] += n
        return totals

    def to_json(self) -> dict:
        return {
            "strata": {
                stratum_key(*k): {"population": n, "eligible": self.eligible[k], "excluded": self.excluded.get(k, {})}
                for k, n in self.population.items()
            },
            "flags": self.flags,
        }

    @classmethod
    def from_json(cls, data: dict) -> FrameCounts:
        counts = cls(flags=dict(data.get("flags", {})))
        for key, row in data["strata"].items():
            k = parse_stratum(key)
            counts.population[k] = row["population"]
            counts.eligible[k] = row["eligible"]
            if row["excluded"]:
                counts.excluded[k] = dict(row["excluded"])
        return counts


def eligible_sql(conditions: Mapping[ExclusionReason, str]) -> str:
    """The eligibility rule of ``domain.exclusions`` as an SQL condition: true when no reason
    applies. ``conditions`` holds, for every reason, the SQL expression that says it applies."""
    if set(conditions) != set(ExclusionReason):
        raise ValueError(f"an SQL condition for every exclusion reason is needed, got {sorted(conditions)}")
    # NOT a AND NOT b ...: a NOT EXISTS at the top of a WHERE stays an anti-join for the planner.
    return " AND ".join(f"NOT ({conditions[reason]})" for reason in ExclusionReason)


def unit_conditions(alias: str, recent: str) -> dict[ExclusionReason, str]:
    """Each reason over a row ``alias`` with the units' flag columns (frame_unit, frame_cell):
    its flag, and ``recent`` (an SQL expression) for having been sampled recently."""
    return {**{reason: f"{alias}.{flag}" for reason, flag in UNIT_FLAGS.items()}, ExclusionReason.RECENTLY_SAMPLED: recent}


def _recent_sql(with_recent_draws: bool, param: str) -> str:
    """Whether frame_unit ``fu`` was sampled by a recent draw (their ids in ``param``)."""
    # Without earlier draws a constant, so the planner does no anti-join probe per unit.
    if not with_recent_draws:
        return "false"
    return (
        f"EXISTS (SELECT 1 FROM {SCHEMA}.sampled_unit su "
        f"WHERE su.draw_id = ANY({param}::uuid[]) AND su.pseudonym = fu.pseudonym)"
    )


async def round_reference_date(uow: UnitOfWork, round_id: str) -> date | None:
    return await uow.session.scalar(
        sa.select(sa.func.max(FrameDelivery.reference_date)).where(
            FrameDelivery.round_id == round_id, FrameDelivery.active.is_(True)
        )
    )


async def recent_draw_ids(uow: UnitOfWork, round_id: str, reference_date: date | None, rounds: int) -> list[uuid.UUID]:
    """The draws of the last `rounds` earlier rounds, newest first. Rounds are ordered by their
    frame's reference date, not by when they were drawn: rounds with the same reference date
    (a test round, a redo) are not "earlier" and never exclude each other's citizens."""
    if not rounds or reference_date is None:
        return []
    rows = await uow.session.scalars(
        sa.select(Draw.id)
        .where(Draw.round_id != round_id, Draw.reference_date < reference_date)
        .order_by(Draw.reference_date.desc(), Draw.created_at.desc())
        .limit(rounds)
    )
    return list(rows)


async def count_frame(uow: UnitOfWork, round_id: str, recent_draws: list[uuid.UUID]) -> FrameCounts:
    """The round's active frame counted by stratum and exclusion reason (from the deliveries'
    frame_cell counts, see _scan_draw_frame)."""
    return (await _scan_draw_frame(uow, round_id, recent_draws, duplicates=False)).counts


async def frame_summary(uow: UnitOfWork, settings: SamplingSettings, round_id: str) -> FrameSummary:
    # One snapshot for the reference date, the recent draws and the counts: a delivery that
    # becomes active between those reads would otherwise be counted without its exclusions.
    await uow.session.execute(sa.text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY"))
    await require_round(uow, round_id)
    stored = await uow.session.get(RoundAllocation, round_id)
    recent_rounds = stored.recent_rounds if stored else settings.exclude_sampled_in_last_rounds
    reference_date = await round_reference_date(uow, round_id)
    counts = await count_frame(uow, round_id, await recent_draw_ids(uow, round_id, reference_date, recent_rounds))
    return FrameSummary(
        round_id=round_id,
        municipalities=len({k for k, _ in counts.population}),
        recent_rounds=recent_rounds,
        exclusions=counts.exclusions,
        exclusion_flags=counts.flags,
        strata=[
            StratumCount(kommunekode=k, maalgruppe=g, population=n, eligible=counts.eligible[(k, g)], excluded=counts.excluded.get((k, g), {}))
            for (k, g), n in counts.population.items()
        ],
    )


# --- allocation --------------------------------------------------------------------------------


def merge_rules(base: AllocationRules, override: RulesOverride) -> AllocationRules:
    """The service's default rules with a round's changes; response rates merge per group, so
    observed rates can be given for just the groups that have them."""
    values = base.model_dump()
    changes = override.model_dump(exclude_none=True)
    # A maximum the operator gives is a cap (it wins over the answer minimums), unless they say not.
    if "max_sample" in changes:
        changes.setdefault("max_sample_is_cap", True)
    if rates := changes.pop("response_rates", None):
        values["response_rates"] = {**values["response_rates"], **rates}
    values.update(changes)
    try:
        return AllocationRules.model_validate(values)
    except ValidationError as exc:
        raise InvalidAllocation(str(exc)) from None


def compute_allocation(
    counts: FrameCounts, rules: AllocationRules, overrides: Mapping[StratumKey, int] = {}
) -> Allocation:
    try:
        allocation = allocate(counts.eligible, rules)
        return adjust(allocation, overrides) if overrides else allocation
    except AllocationError as exc:
        raise InvalidAllocation(str(exc)) from None


def allocation_table(allocation: Allocation, counts: FrameCounts, decisions: Mapping[str, dict] = {}) -> dict:
    """The table an operator reviews: per stratum and per municipality (JSON-ready), with each
    cap conflict and who decided it (``decisions``: kommunekode -> decided_by, decided_at)."""
    strata = [
        StratumAllocationOut(
            stratum=stratum_key(*key),
            kommunekode=s.kommunekode,
            maalgruppe=s.maalgruppe,
            population=counts.population[key],
            excluded=counts.population[key] - s.population,
            eligible=s.population,
            sample=s.sample,
            response_rate=s.response_rate,
            expected_answers=s.expected_answers,
            inclusion_probability=s.inclusion_probability,
            overridden=s.overridden,
        )
        for key, s in allocation.strata.items()
    ]
    population_by_kommune: Counter[str] = Counter()
    for (kode, _), n in counts.population.items():
        population_by_kommune[kode] += n
    municipalities = [
        MunicipalityAllocationOut(
            kommunekode=kode,
            population=population_by_kommune[kode],
            eligible=m.population,
            target_sample=m.target_sample,
            sample=m.sample,
            expected_answers=m.expected_answers,
            max_expected_answers=m.max_expected_answers,
            shortfall=m.shortfall,
            warnings=[
                AllocationWarningOut(code=w.code.value, maalgruppe=w.maalgruppe, shortfall=w.shortfall, message=w.message)
                for w in m.warnings
            ],
            cap_conflict=CapConflictOut(**m.cap_conflict.to_json(), **decisions.get(kode, {})) if m.cap_conflict else None,
        )
        for kode, m in allocation.municipalities.items()
    ]
    totals = AllocationTotals(
        population=sum(counts.population.values()),
        eligible=sum(s.eligible for s in strata),
        sample=allocation.total_sample,
        expected_answers=sum(m.expected_answers for m in municipalities),
    )
    return {
        "exclusions": counts.exclusions,
        "totals": totals.model_dump(),
        "municipalities": [m.model_dump(mode="json") for m in municipalities],
        "strata": [s.model_dump() for s in strata],
    }


def sampling_progress(
    round_id: str, stage: str, table: dict, counts: FrameCounts, rules: AllocationRules, *,
    draw_id: uuid.UUID | None = None, forced: bool = False,
) -> SamplingProgress:
    """The round's frame, allocation and (drawn) sample per municipality, counts only: what
    analytics' round overview shows (``table`` as allocation_table makes it)."""
    excluded: dict[str, Counter] = defaultdict(Counter)
    for (kommunekode, _), reasons in counts.excluded.items():
        excluded[kommunekode].update(reasons)
    return SamplingProgress(
        round_id=round_id,
        stage=stage,
        draw_id=draw_id,
        forced=forced,
        max_sample=rules.max_sample,
        min_expected_answers=rules.min_expected_answers,
        municipalities=[
            SamplingMunicipality(
                kommunekode=m["kommunekode"], population=m["population"], eligible=m["eligible"], sample=m["sample"],
                expected_answers=m["expected_answers"], capped=m.get("cap_conflict") is not None,
                excluded={reason: n for reason, n in excluded[m["kommunekode"]].items() if n},
            )
            for m in table["municipalities"]
        ],
        as_of=datetime.now(UTC),
    )


def _progress_of(stored: RoundAllocation, view: AllocationView) -> SamplingProgress:
    """sampling.progress for a stored allocation, from the view just computed of it."""
    return sampling_progress(
        stored.round_id, stored.status, {"municipalities": [m.model_dump(mode="json") for m in view.municipalities]},
        FrameCounts.from_json(stored.frame_counts), view.rules,
    )


def _overrides(stored: RoundAllocation) -> dict[StratumKey, int]:
    return {parse_stratum(k): n for k, n in stored.overrides.items()}


def _view(stored: RoundAllocation) -> AllocationView:
    counts = FrameCounts.from_json(stored.frame_counts)
    rules = AllocationRules.model_validate(stored.rules)
    allocation = compute_allocation(counts, rules, _overrides(stored))
    decisions = {d["kommunekode"]: {"decided_by": d["decided_by"], "decided_at": d["decided_at"]} for d in stored.cap_decisions or []}
    return AllocationView(
        round_id=stored.round_id,
        status=stored.status,
        rules=rules,
        recent_rounds=stored.recent_rounds,
        updated_by=stored.updated_by,
        updated_at=stored.updated_at,
        confirmed_by=stored.confirmed_by,
        **allocation_table(allocation, counts, decisions),
    )


async def _ensure_not_drawn(uow: UnitOfWork, round_id: str) -> None:
    if await uow.session.scalar(sa.select(Draw.id).where(Draw.round_id == round_id)):
        raise DrawExists(round_id)


async def preview_allocation(
    uow: UnitOfWork, settings: SamplingSettings, round_id: str, request: AllocationRequest, actor: str
) -> AllocationView:
    """Compute and store the round's proposed allocation from rules (operator overrides of an
    earlier proposal are dropped: new rules, new starting point)."""
    await require_round(uow, round_id, drawing=True)
    await _ensure_not_drawn(uow, round_id)
    rules = merge_rules(settings.allocation_rules, request.rules)
    recent_rounds = request.recent_rounds if request.recent_rounds is not None else settings.exclude_sampled_in_last_rounds
    reference_date = await round_reference_date(uow, round_id)
    counts = await count_frame(uow, round_id, await recent_draw_ids(uow, round_id, reference_date, recent_rounds))
    if not counts.population:
        raise EmptyFrame(round_id)
    allocation = compute_allocation(counts, rules)  # validates (e.g. a group without a response rate)
    stored = await uow.session.get(RoundAllocation, round_id, with_for_update=True)
    if stored is None:
        stored = RoundAllocation(round_id=round_id)
        uow.session.add(stored)
    stored.rules = rules.model_dump(mode="json")
    stored.recent_rounds = recent_rounds
    stored.overrides = {}
    stored.frame_counts = counts.to_json()
    # Where the operator's cap wins over an answer rule: recorded, who and when, and audited.
    now = datetime.now(UTC)
    stored.cap_decisions = [
        {"kommunekode": kode, **m.cap_conflict.to_json(), "decided_by": actor, "decided_at": now.isoformat()}
        for kode, m in allocation.municipalities.items()
        if m.cap_conflict is not None
    ]
    if stored.cap_decisions:
        await record(
            uow.session, AUDIT, actor=actor, action="allocation.capped", kind="round",
            resource={"round_id": round_id, "cap_decisions": stored.cap_decisions},
        )
    return await _save_as_proposed(uow, stored, actor)


async def _save_as_proposed(uow: UnitOfWork, stored: RoundAllocation, actor: str) -> AllocationView:
    """Any change puts the allocation back to "proposed": it must be confirmed again."""
    stored.status = "proposed"
    stored.updated_by = actor
    stored.updated_at = datetime.now(UTC)
    stored.confirmed_by = None
    stored.confirmed_at = None
    await uow.session.flush()
    view = _view(stored)
    uow.publish(_progress_of(stored, view))
    await uow.commit()
    return view


async def get_allocation(uow: UnitOfWork, round_id: str) -> AllocationView:
    stored = await uow.session.get(RoundAllocation, round_id)
    if stored is None:
        raise NoAllocation(round_id)
    return _view(stored)


async def set_overrides(uow: UnitOfWork, round_id: str, request: OverridesRequest, actor: str, *, replace_all: bool) -> AllocationView:
    """Operator overrides of n_h: PATCH merges them (sample null drops one), PUT replaces them
    all. The allocation is re-validated and goes back to "proposed" until confirmed again."""
    await _ensure_not_drawn(uow, round_id)
    stored = await uow.session.get(RoundAllocation, round_id, with_for_update=True)
    if stored is None:
        raise NoAllocation(round_id)
    overrides = {} if replace_all else dict(stored.overrides)
    for o in request.overrides:
        key = stratum_key(o.kommunekode, o.maalgruppe)
        if o.sample is None:
            overrides.pop(key, None)
        else:
            overrides[key] = o.sample
    stored.overrides = overrides
    compute_allocation(FrameCounts.from_json(stored.frame_counts), AllocationRules.model_validate(stored.rules), _overrides(stored))
    return await _save_as_proposed(uow, stored, actor)


async def confirm_allocation(uow: UnitOfWork, round_id: str, actor: str) -> AllocationView:
    await _ensure_not_drawn(uow, round_id)
    stored = await uow.session.get(RoundAllocation, round_id, with_for_update=True)
    if stored is None:
        raise NoAllocation(round_id)
    reference_date = await round_reference_date(uow, round_id)
    current = await count_frame(uow, round_id, await recent_draw_ids(uow, round_id, reference_date, stored.recent_rounds))
    if current.eligible != FrameCounts.from_json(stored.frame_counts).eligible:
        raise StaleAllocation(round_id)
    stored.status = "confirmed"
    stored.confirmed_by = actor
    stored.confirmed_at = datetime.now(UTC)
    await uow.session.flush()
    view = _view(stored)
    uow.publish(_progress_of(stored, view))
    await uow.commit()
    return view


# --- the draw ----------------------------------------------------------------------------------


_SAMPLED_COLUMNS = [
    "draw_id",
    "pseudonym",
    "kommunekode",
    "stratum",
    "inclusion_probability",
    "design_weight",
    "maalgruppe",
    "gender",
    "age_band",
    "duration_band",
    "delivery_id",
    "seq",
]


@dataclass
class DrawFrame:
    """What one scan of the locked frame says before the draw: the counts and exclusions (as
    count_frame), the population margins of the eligible frame, and how many eligible
    pseudonyms occur more than once (a citizen delivered by two municipalities)."""

    counts: FrameCounts
    margins: Margins
    duplicates: int


def _scan_sql(with_recent_draws: bool) -> str:
    """The statement of _scan_draw_frame ($1 the round, $2 the recent draws if any): per
    municipality, the units by target group and every reason's flag (in precedence order), then
    the eligible units' band counts. The flag columns and the eligibility condition come from
    ``domain.exclusions`` (UNIT_FLAGS, eligible_sql)."""
    recent = "$2::uuid[]" if with_recent_draws else "'{}'::uuid[]"
    flags = list(UNIT_FLAGS.values())
    cell = "kommunekode, maalgruppe, gender, age_band, duration_band"
    group = ", ".join(str(i) for i in range(1, 6 + len(flags)))
    c_flags = ", ".join(f"c.{f}" for f in flags)
    g_conditions = unit_conditions("g", "g.recently_sampled")
    reason_columns = ", ".join(g_conditions[reason] for reason in ExclusionReason)
    no_reasons = ", ".join("false" for _ in ExclusionReason)
    return f"""
        WITH active AS (
            SELECT delivery_id, kommunekode FROM {SCHEMA}.frame_delivery WHERE round_id = $1 AND active
        ), cells AS (
            SELECT a.kommunekode, c.maalgruppe, c.gender, c.age_band, c.duration_band, {c_flags}, sum(c.n)::bigint AS n
            FROM {SCHEMA}.frame_cell c JOIN active a ON a.delivery_id = c.delivery_id
            GROUP BY {group}
        ), recent AS MATERIALIZED (
            SELECT a.kommunekode, fu.maalgruppe, fu.gender, fu.age_band, fu.duration_band,
                   {", ".join(f"fu.{f}" for f in flags)}, count(*) AS n
            FROM {SCHEMA}.frame_unit fu JOIN active a ON a.delivery_id = fu.delivery_id
            WHERE cardinality({recent}) > 0
              AND fu.pseudonym IN (SELECT su.pseudonym FROM {SCHEMA}.sampled_unit su WHERE su.draw_id = ANY({recent}))
            GROUP BY {group}
        ), g AS MATERIALIZED (
            SELECT c.kommunekode, c.maalgruppe, c.gender, c.age_band, c.duration_band, {c_flags},
                   false AS recently_sampled, c.n - coalesce(r.n, 0) AS n
            FROM cells c LEFT JOIN recent r USING ({cell}, {", ".join(flags)})
            UNION ALL
            SELECT {cell}, {", ".join(flags)}, true, n FROM recent
        ), e AS (
            SELECT * FROM g WHERE {eligible_sql(g_conditions)} AND n > 0
        )
        SELECT 'maalgruppe' AS variable, kommunekode, maalgruppe AS value, {reason_columns}, sum(n)::bigint AS n
            FROM g WHERE n > 0 GROUP BY kommunekode, maalgruppe, {reason_columns}
        UNION ALL SELECT 'gender', kommunekode, gender, {no_reasons}, sum(n)::bigint FROM e GROUP BY 2, 3
        UNION ALL SELECT 'age_band', kommunekode, age_band, {no_reasons}, sum(n)::bigint FROM e GROUP BY 2, 3
        UNION ALL SELECT 'duration_band', kommunekode, duration_band, {no_reasons}, sum(n)::bigint FROM e GROUP BY 2, 3
        """


async def _scan_draw_frame(
    uow: UnitOfWork, round_id: str, recent_draws: list[uuid.UUID], *, duplicates: bool = True
) -> DrawFrame:
    """count_frame, the margins and the duplicate check, without scanning the frame's units.

    The counts are sums of the active deliveries' frame_cell rows (~20,000 for a national frame,
    written at activation: services.sampling.frame) by stratum, bands and exclusion flags. Units
    that earlier draws sampled (the recent_draws) are the one thing a cell cannot know in
    advance: they are counted here, from the earlier samples' pseudonyms, and moved from their
    cell's "not recently sampled" count to its "recently sampled" one. Then the same sums per
    stratum and per band as before. Duplicates: only the units recorded as candidates at
    activation can occur twice; they are looked up by pseudonym and counted when at least two
    of their occurrences are eligible (counted, never read: they are personal data)."""
    raw = await _raw(uow)
    rows = await raw.fetch(_scan_sql(bool(recent_draws)), round_id, *([recent_draws] if recent_draws else []))
    duplicate_count = await raw.fetchval(_DUPLICATES_SQL, round_id, recent_draws) if duplicates else 0
    counts = FrameCounts()
    strata: dict[StratumKey, int] = {}
    variables: dict[str, dict[tuple[str, str], int]] = {name: {} for name in BAND_VARIABLES}
    for variable, kommunekode, value, *flags, n in rows:
        if variable != "maalgruppe":
            variables[variable][(kommunekode, value)] = n
        else:
            key = (kommunekode, value)
            counts.population[key] = counts.population.get(key, 0) + n
            counts.eligible.setdefault(key, 0)
            for reason, flagged in zip(REASONS, flags):
                counts.flags[reason] += n if flagged else 0
            if reasons := reasons_for(dict(zip(ExclusionReason, flags))):
                reason = reasons[0].value  # counted under the first, as domain.apply_exclusions
                excluded = counts.excluded.setdefault(key, {})
                excluded[reason] = excluded.get(reason, 0) + n
            else:
                counts.eligible[key] += n
                strata[key] = n
    # In the order count_frame gives (by stratum), so the JSON stored with the draw is too.
    counts.population = dict(sorted(counts.population.items()))
    counts.eligible = {k: counts.eligible[k] for k in counts.population}
    counts.excluded = {k: counts.excluded[k] for k in counts.population if k in counts.excluded}
    municipalities: Counter[str] = Counter()
    for (kommunekode, _), n in strata.items():
        municipalities[kommunekode] += n
    margins = Margins(
        strata=dict(sorted(strata.items())),
        municipalities=dict(sorted(municipalities.items())),
        variables={name: dict(sorted(c.items())) for name, c in variables.items()},
    )
    return DrawFrame(counts, margins, duplicate_count)


# The eligible pseudonyms that occur more than once in the round's active frame ($1 round, $2
# recent draws). Only frame_duplicate's candidates can (see services.sampling.frame); each is
# looked up by pseudonym, so the frame is not scanned.
_DUPLICATES_SQL = f"""
    SELECT count(*) FROM (
        SELECT fu.pseudonym
        FROM {SCHEMA}.frame_unit fu JOIN {SCHEMA}.frame_delivery d ON d.delivery_id = fu.delivery_id
        WHERE d.round_id = $1 AND d.active
          AND fu.pseudonym IN (
              SELECT fd.pseudonym FROM {SCHEMA}.frame_duplicate fd JOIN {SCHEMA}.frame_delivery dd ON dd.delivery_id = fd.delivery_id
              WHERE dd.round_id = $1 AND dd.active)
          AND {eligible_sql(unit_conditions("fu", _recent_sql(True, "$2")))}
        GROUP BY fu.pseudonym HAVING count(*) > 1
    ) twice
"""


def margins_json(margins: Margins) -> dict:
    return {
        kode: {"population": n, "margins": margins.for_municipality(kode)}
        for kode, n in margins.municipalities.items()
    }


def _eligible_frame_sql(recent_draws: list[uuid.UUID]) -> str:
    """The eligible frame with what the sample and its events carry (parameters $1 the active
    deliveries' ids, locked by the draw, and $2 the recent draws when there are any): the
    exclusion rule of count_frame. By delivery id rather than by round, so PostgreSQL reads the
    round's rows through the primary key's (delivery_id, ...) prefix instead of scanning every
    round the table holds."""
    return f"""
        SELECT fu.pseudonym, d.kommunekode, fu.maalgruppe, fu.gender, fu.age_band, fu.duration_band,
               fu.delivery_id
        FROM {SCHEMA}.frame_unit fu JOIN {SCHEMA}.frame_delivery d ON d.delivery_id = fu.delivery_id
        WHERE fu.delivery_id = ANY($1::uuid[])
          AND {eligible_sql(unit_conditions("fu", _recent_sql(bool(recent_draws), "$2")))}
    """


def _chunk_headers(
    settings: SamplingSettings, round_id: str, draw_id: uuid.UUID, seed: int, allocation: Allocation
) -> list[tuple]:
    """The sample.drawn envelopes of the draw without their persons, built and validated by the
    shared models (persons=[]): one per chunk of `event_chunk_size` persons of a municipality,
    in publishing order (municipality, chunk). Each as (event_id, topic, key, kommunekode,
    chunk_no, the envelope's JSON up to and including '"persons":[', the rest, event type,
    event version), for PostgreSQL to put the persons in between."""
    summaries: dict[str, list[StratumSummary]] = defaultdict(list)
    sampled: Counter[str] = Counter()
    for key, s in allocation.strata.items():
        summaries[s.kommunekode].append(StratumSummary(stratum=stratum_key(*key), maalgruppe=s.maalgruppe, population=s.population, sample=s.sample))
        sampled[s.kommunekode] += s.sample
    size = settings.event_chunk_size
    headers = []
    for kommunekode in sorted(k for k, n in sampled.items() if n):
        chunk_count = -(-sampled[kommunekode] // size)
        for chunk_no in range(chunk_count):
            final = chunk_no == chunk_count - 1
            payload = SampleDrawn(
                round_id=round_id,
                kommunekode=kommunekode,
                draw_id=draw_id,
                seed=seed,
                chunk_no=chunk_no,
                final=final,
                chunk_count=chunk_count if final else None,
                strata=summaries[kommunekode] if final else [],
                persons=[],
            )
            envelope = Envelope.wrap(payload, source=settings.service_name, correlation_id=str(draw_id))
            text = envelope.model_dump_json()
            assert text.endswith(_NO_PERSONS), "persons must be the envelope's last field"
            cut = len(text) - len(_NO_PERSONS) + len('"persons":[')
            headers.append(
                (envelope.event_id, payload.topic, payload.key(), kommunekode, chunk_no, text[:cut], text[cut:], envelope.type, envelope.version)
            )
    return headers


_NO_PERSONS = '"persons":[]}}'


def _person_fragments(allocation: Allocation, chunk_size: int) -> tuple[list[str], list[int], list[int]]:
    """Per stratum (allocation order): the part of a person's JSON that is the same for the whole
    stratum, rendered here (json.dumps: the same escaping and float repr as the shared models),
    the seq of its municipality's first person, and the index of its municipality's first chunk
    in _chunk_headers' list. A municipality's strata are consecutive in the allocation's sorted
    order, so its persons are a run of seq, and a person's chunk is the header at
    ``chunk_base + (seq - first) // chunk_size``."""
    fragments, firsts, bases = [], [], []
    first: dict[str, tuple[int, int]] = {}
    seq = chunks = 0
    sampled: Counter[str] = Counter()
    for s in allocation.strata.values():
        sampled[s.kommunekode] += s.sample
    for key, s in allocation.strata.items():
        fragments.append(
            f',"maalgruppe":{json.dumps(s.maalgruppe)},"stratum":{json.dumps(stratum_key(*key))},'
            f'"inclusion_probability":{json.dumps(s.inclusion_probability)},"design_weight":{json.dumps(s.design_weight)}'
        )
        if s.kommunekode not in first:
            first[s.kommunekode] = (seq, chunks)
            chunks += -(-sampled[s.kommunekode] // chunk_size)
        firsts.append(first[s.kommunekode][0])
        bases.append(first[s.kommunekode][1])
        seq += s.sample
    return fragments, firsts, bases


def _draw_statement(recent_draws: list[uuid.UUID]) -> str:
    """One statement draws (draw_sql.picked_sql over the eligible frame), writes sampled_unit and
    the sample.drawn envelopes into the outbox, and returns its counts.

    Parameters: the frame's ($1 active deliveries, $2 recent draws if any), picked_sql's, the
    three extra per-stratum arrays of _person_fragments, then draw_id, the chunk size and the
    columns of _chunk_headers (arrays in publishing order, indexed by a person's chunk). A
    person's JSON is concatenated text, a ``SampledPerson`` of sample.drawn v2 field for field
    (the constant parts per stratum come rendered from Python; to_json escapes the rest; no
    contact: the frame has none), and the envelopes go into the bulk outbox as that text
    (shared.bus: never parsed into jsonb, relayed as stored). (Every column concatenated is NOT
    NULL in frame_unit, so no person can turn NULL and drop out of string_agg.) The chunks come
    out of one sort by (chunk, seq) in publishing order, so the persons are neither hashed nor
    sorted again on their way into the outbox."""
    frame_params = 2 if recent_draws else 1
    first = frame_params + 1
    p = first + draw_sql.PARAMS + 3
    sampled_columns = ", ".join(_SAMPLED_COLUMNS)
    picked = draw_sql.picked_sql(
        _eligible_frame_sql(recent_draws), first, extra=[("fragment", "text"), ("kommune_first_seq", "int"), ("chunk_base", "int")]
    )
    return f"""
        WITH picked AS MATERIALIZED ({picked}),
        units AS (
            INSERT INTO {SCHEMA}.sampled_unit ({sampled_columns})
            SELECT ${p}::uuid, pseudonym, kommunekode, kommunekode || ':' || maalgruppe, pi, weight,
                   maalgruppe, gender, age_band, duration_band, delivery_id, seq
            FROM picked
            ORDER BY seq  -- the primary key's order (draw_id, seq): its index grows at the right edge
            RETURNING 1
        ),
        chunks AS (
            SELECT chunk_base + (seq - kommune_first_seq) / ${p + 1}::int + 1 AS chunk,
                   string_agg(
                       '{{"pseudonym":' || to_json(pseudonym)::text || fragment
                       || ',"bands":{{"gender":' || to_json(gender)::text || ',"age_band":' || to_json(age_band)::text
                       || ',"duration_band":' || to_json(duration_band)::text || '}}}}',
                       ',' ORDER BY seq) AS persons
            FROM picked
            GROUP BY 1
        ),
        events AS (
            INSERT INTO {SCHEMA}.bulk_outbox (event_id, topic, key, event_type, event_version, correlation_id, envelope)
            SELECT (${p + 2}::uuid[])[chunk], (${p + 3}::text[])[chunk], (${p + 4}::text[])[chunk],
                   (${p + 7}::text[])[chunk], (${p + 8}::int[])[chunk], (${p}::uuid)::text,
                   (${p + 5}::text[])[chunk] || persons || (${p + 6}::text[])[chunk]
            FROM chunks
            ORDER BY chunk
            RETURNING 1
        )
        SELECT (SELECT count(*) FROM units) AS sampled, (SELECT count(*) FROM events) AS events
    """


async def draw(
    uow: UnitOfWork,
    settings: SamplingSettings,
    *,
    round_id: str,
    seed: int | None,
    sample_per_stratum: int | None,
    drawn_by: str,
    force: bool = False,
    stages: dict[str, float] | None = None,
) -> DrawResult:
    """Draw the round's sample from its stored allocation (confirmed or latest proposal; the
    service's default rules when none was previewed), record it and publish sample.drawn.

    The frame never leaves PostgreSQL: its counts (exclusions, N_h, margins) are sums of the
    counts kept since its deliveries were activated, with the duplicate check over the
    candidates recorded then (_scan_draw_frame; no scan of the frame's units), Python allocates
    over the ~500 strata and builds the events' headers, and one statement draws, writes
    sampled_unit and assembles the persons of the events into the outbox. `stages`, if given, receives seconds per stage (for the bench)."""
    clock = _Stages(stages)
    session = uow.session
    # One snapshot for the counts and the draw: what was counted is what is drawn from.
    await session.execute(sa.text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"))
    # JIT compilation costs PostgreSQL ~0.5 s per big statement here; these are scans and
    # sorts, it never pays off. The draw sorts the eligible frame (~130 MB for 500,000) and
    # hashes it for the counts: in memory, not in temporary files.
    await session.execute(sa.text("SET LOCAL jit = off"))
    await session.execute(sa.text(f"SET LOCAL work_mem = '{_DRAW_WORK_MEM}'"))
    # Lock the active frame: a re-delivery completing now waits until the draw has committed,
    # so the frame counted, the frame drawn from and the persons published are one frame. One
    # that was activated (or an allocation changed) after the snapshot: a serialization failure.
    try:
        definition = await require_round(uow, round_id, drawing=True)
        deliveries = (
            await session.execute(
                sa.select(FrameDelivery.delivery_id, FrameDelivery.reference_date, FrameDelivery.kommunekode)
                .where(FrameDelivery.round_id == round_id, FrameDelivery.active.is_(True))
                .with_for_update(read=True)
            )
        ).all()
        await _ensure_not_drawn(uow, round_id)
        if not deliveries:
            raise EmptyFrame(round_id)
        stored = await session.get(RoundAllocation, round_id, with_for_update=True)
    except sa.exc.DBAPIError as exc:
        if getattr(exc.orig, "sqlstate", None) == "40001":
            raise StaleAllocation(round_id) from None
        raise
    # Every participating municipality delivered, or the deadline passed; else only forced.
    readiness = draw_readiness(definition.kommuner, [d.kommunekode for d in deliveries], definition.delivery_deadline, datetime.now(UTC))
    if not readiness.ready and not force:
        raise RoundRefused(f"round {round_id} is not ready for the draw: {readiness.reason}")
    forced = not readiness.ready
    reference_date = max(d.reference_date for d in deliveries)
    if stored is not None:
        rules = AllocationRules.model_validate(stored.rules)
        recent_rounds = stored.recent_rounds
        overrides = _overrides(stored)
    else:
        rules, recent_rounds, overrides = settings.allocation_rules, settings.exclude_sampled_in_last_rounds, {}
    recent_draws = await recent_draw_ids(uow, round_id, reference_date, recent_rounds)
    clock.lap("lock")
    scanned = await _scan_draw_frame(uow, round_id, recent_draws)
    counts = scanned.counts
    clock.lap("frame counts (cells, exclusions, margins, duplicates)")
    if stored is not None and counts.eligible != FrameCounts.from_json(stored.frame_counts).eligible:
        raise StaleAllocation(round_id)
    if scanned.duplicates:
        # Counts and draw come from one locked frame, so this is a data problem (one citizen
        # delivered by two municipalities), not a race. Never log or echo the pseudonyms.
        raise InvalidAllocation(f"{scanned.duplicates} citizens occur more than once in the round's frame")
    allocation = compute_allocation(counts, rules, overrides)
    if sample_per_stratum is not None:
        allocation = compute_allocation(
            counts, rules, {**overrides, **{k: min(sample_per_stratum, s.population) for k, s in allocation.strata.items()}}
        )
    seed = seed if seed is not None else new_seed()
    try:
        check_seed(seed)
    except SampleError as exc:
        raise InvalidAllocation(str(exc)) from None
    draw_id = uuid.uuid4()
    decisions = {d["kommunekode"]: {"decided_by": d["decided_by"], "decided_at": d["decided_at"]} for d in (stored.cap_decisions if stored else [])}
    table = allocation_table(allocation, counts, decisions)
    population = sum(counts.eligible.values())
    clock.lap("allocation")
    try:
        await session.execute(
            sa.insert(Draw).values(
                id=draw_id,
                round_id=round_id,
                seed=seed,
                drawn_by=drawn_by,
                allocation=table,
                reference_date=reference_date,
                rules=rules.model_dump(mode="json"),
                recent_rounds=recent_rounds,
                exclusions={"counts": counts.exclusions, "flags": counts.flags, "strata": {stratum_key(*k): v for k, v in counts.excluded.items()}},
                margins=margins_json(scanned.margins),
                population=population,
                sampled=allocation.total_sample,
                forced_by=drawn_by if forced else None,
                readiness=readiness.to_json() if forced else None,
            )
        )
    except sa.exc.IntegrityError:  # a concurrent draw of the same round won the race
        raise DrawExists(round_id) from None
    headers = _chunk_headers(settings, round_id, draw_id, seed, allocation)
    fragments, kommune_first_seq, chunk_base = _person_fragments(allocation, settings.event_chunk_size)
    # Both walk the municipalities in the same (sorted) order; a person's chunk indexes the headers.
    assert all(
        headers[base][3:5] == (s.kommunekode, 0) for s, base in zip(allocation.strata.values(), chunk_base) if s.sample
    ), "event headers and strata disagree on the municipalities' order"
    clock.lap("draw record, event headers")
    raw = await _raw(uow)
    statement = _draw_statement(recent_draws)
    event_ids, topics, keys, _, _, heads, tails, types, versions = map(list, zip(*headers)) if headers else ([],) * 9

    async def run(thresholds: list[int]):
        return await raw.fetchrow(
            statement,
            [d.delivery_id for d in deliveries],
            *([recent_draws] if recent_draws else []),
            seed,
            *draw_sql.StrataArrays.of(allocation).params(),
            thresholds,
            fragments,
            kommune_first_seq,
            chunk_base,
            draw_id,
            settings.event_chunk_size,
            event_ids,
            topics,
            keys,
            heads,
            tails,
            types,
            versions,
        )

    await raw.execute("SAVEPOINT draw")
    checks = await run(draw_sql.thresholds(allocation))
    if checks["sampled"] < allocation.total_sample:
        # A stratum came up short below its sort threshold (draw_sql): same draw, all sorted.
        await raw.execute("ROLLBACK TO SAVEPOINT draw")
        checks = await run([draw_sql.NO_THRESHOLD] * len(allocation.strata))
    clock.lap("draw, sampled_unit, outbox (one statement)")
    if forced:
        await record(
            session, AUDIT, actor=drawn_by, action="draw.forced", kind="round",
            resource={"round_id": round_id, "draw_id": str(draw_id), **readiness.to_json()},
        )
    if checks["sampled"] != allocation.total_sample or checks["events"] != len(headers):
        # Counts and draw read one snapshot of the locked frame, so this cannot happen; refuse
        # rather than state wrong probabilities. Leaving without commit rolls it all back.
        raise InvalidAllocation(
            f"the draw does not match the allocation: {checks['sampled']} sampled of {allocation.total_sample}, "
            f"{checks['events']} events of {len(headers)}"
        )
    uow.publish(sampling_progress(round_id, "drawn", table, counts, rules, draw_id=draw_id, forced=forced))
    await uow.commit()
    clock.lap("commit")
    return DrawResult(
        draw_id=draw_id,
        round_id=round_id,
        seed=seed,
        forced=forced,
        missing=list(readiness.missing),
        sampled=allocation.total_sample,
        population=population,
        exclusions=counts.exclusions,
        strata=[
            DrawStratum(
                stratum=stratum_key(*k),
                kommunekode=s.kommunekode,
                maalgruppe=s.maalgruppe,
                population=s.population,
                sample=s.sample,
                inclusion_probability=s.inclusion_probability,
                design_weight=s.design_weight,
            )
            for k, s in allocation.strata.items()
        ],
    )


_DRAW_WORK_MEM = "512MB"


class _Stages:
    def __init__(self, into: dict[str, float] | None) -> None:
        self._into = into
        self._last = time.perf_counter()

    def lap(self, name: str) -> None:
        if self._into is not None:
            now = time.perf_counter()
            self._into[name] = self._into.get(name, 0.0) + now - self._last
            self._last = now


async def draw_margins(uow: UnitOfWork, round_id: str, draw_id: uuid.UUID) -> DrawMargins | None:
    row = (await uow.session.execute(sa.select(Draw.margins).where(Draw.id == draw_id, Draw.round_id == round_id))).first()
    if row is None or row.margins is None:
        return None
    return DrawMargins(
        draw_id=draw_id,
        round_id=round_id,
        municipalities=[
            MunicipalityMargins(kommunekode=kode, population=m["population"], margins=m["margins"])
            for kode, m in sorted(row.margins.items())
        ],
    )
