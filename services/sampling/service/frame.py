"""The frame of a round as the service reads it: its counts by stratum and exclusion reason
(sums of the deliveries' frame_cell counts, ``services.sampling.frame``), the margins and the
duplicate check, and the eligible frame the draw takes. The eligibility rule's SQL is generated
from ``domain.exclusions`` (``eligible_sql``)."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date

import sqlalchemy as sa

from services.sampling.domain import UNIT_FLAGS, ExclusionReason, Margins, StratumKey, reasons_for
from services.sampling.models import Draw, FrameDelivery
from shared.bus import UnitOfWork

SCHEMA = "sampling"
REASONS = [r.value for r in ExclusionReason]  # in precedence order
BAND_VARIABLES = ("gender", "age_band", "duration_band")


def stratum_key(kommunekode: str, maalgruppe: str) -> str:
    return f"{kommunekode}:{maalgruppe}"


def parse_stratum(key: str) -> StratumKey:
    kommunekode, _, maalgruppe = key.partition(":")
    return (kommunekode, maalgruppe)


async def raw_connection(uow: UnitOfWork):
    """The asyncpg connection under the session, inside the session's transaction (a statement
    through the session must have run first, so that the transaction has begun)."""
    connection = await uow.session.connection()
    return (await connection.get_raw_connection()).driver_connection


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
    frame_cell counts, see scan_draw_frame)."""
    return (await scan_draw_frame(uow, round_id, recent_draws, duplicates=False)).counts


@dataclass
class DrawFrame:
    """What one scan of the locked frame says before the draw: the counts and exclusions (as
    count_frame), the population margins of the eligible frame, and how many eligible
    pseudonyms occur more than once (a citizen delivered by two municipalities)."""

    counts: FrameCounts
    margins: Margins
    duplicates: int
    # The eligible frame per (kommunekode, maalgruppe, gender, age_band, duration_band): the
    # population cells of frame.margins (only when asked for: scan_draw_frame(cells=True)).
    cells: list[tuple[str, str, str, str, str, int]] = field(default_factory=list)


def _scan_sql(with_recent_draws: bool) -> str:
    """The statement of scan_draw_frame ($1 the round, $2 the recent draws if any): per
    municipality, the units by target group and every reason's flag (in precedence order), then
    the eligible units' band counts. The flag columns and the eligibility condition come from
    ``domain.exclusions`` (UNIT_FLAGS, eligible_sql)."""
    g_conditions = unit_conditions("g", "g.recently_sampled")
    reason_columns = ", ".join(g_conditions[reason] for reason in ExclusionReason)
    no_reasons = ", ".join("false" for _ in ExclusionReason)
    return _frame_ctes(with_recent_draws) + f"""
        SELECT 'maalgruppe' AS variable, kommunekode, maalgruppe AS value, {reason_columns}, sum(n)::bigint AS n
            FROM g WHERE n > 0 GROUP BY kommunekode, maalgruppe, {reason_columns}
        UNION ALL SELECT 'gender', kommunekode, gender, {no_reasons}, sum(n)::bigint FROM e GROUP BY 2, 3
        UNION ALL SELECT 'age_band', kommunekode, age_band, {no_reasons}, sum(n)::bigint FROM e GROUP BY 2, 3
        UNION ALL SELECT 'duration_band', kommunekode, duration_band, {no_reasons}, sum(n)::bigint FROM e GROUP BY 2, 3
        """


def _cells_sql(with_recent_draws: bool) -> str:
    """The eligible frame counted per municipality x target group x gender x age band x duration
    band (the cells of frame.margins), over the same counts as _scan_sql."""
    return _frame_ctes(with_recent_draws) + """
        SELECT kommunekode, maalgruppe, gender, age_band, duration_band, sum(n)::bigint AS n
        FROM e GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2, 3, 4, 5
        """


def _frame_ctes(with_recent_draws: bool) -> str:
    """The common table expressions of _scan_sql and _cells_sql: ``g`` the round's counts by
    cell and every reason's flag, ``e`` its eligible cells."""
    recent = "$2::uuid[]" if with_recent_draws else "'{}'::uuid[]"
    flags = list(UNIT_FLAGS.values())
    cell = "kommunekode, maalgruppe, gender, age_band, duration_band"
    group = ", ".join(str(i) for i in range(1, 6 + len(flags)))
    c_flags = ", ".join(f"c.{f}" for f in flags)
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
            SELECT * FROM g WHERE {eligible_sql(unit_conditions("g", "g.recently_sampled"))} AND n > 0
        )
        """


async def scan_draw_frame(
    uow: UnitOfWork, round_id: str, recent_draws: list[uuid.UUID], *, duplicates: bool = True, cells: bool = False
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
    raw = await raw_connection(uow)
    rows = await raw.fetch(_scan_sql(bool(recent_draws)), round_id, *([recent_draws] if recent_draws else []))
    duplicate_count = await raw.fetchval(_DUPLICATES_SQL, round_id, recent_draws) if duplicates else 0
    population_cells = (
        [tuple(r) for r in await raw.fetch(_cells_sql(bool(recent_draws)), round_id, *([recent_draws] if recent_draws else []))]
        if cells else []
    )
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
    return DrawFrame(counts, margins, duplicate_count, population_cells)


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


def eligible_frame_sql(recent_draws: list[uuid.UUID]) -> str:
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
