"""Sampling's service functions: the frame and its exclusions, the allocation (preview, operator
overrides, confirmation) and the draw with its sample.drawn events.

The statistics live in ``services.sampling.domain`` (allocate, adjust, draw_sample). This module
only moves data: a national frame is 500,000 rows, so the frame is counted and filtered in SQL
(the exclusion rule below mirrors ``domain.apply_exclusions``; the integration tests check both
agree), the sample goes in with COPY, and the events are assembled inside PostgreSQL from the
sampled rows so that 130,000 sealed contacts never make a round trip through Python.
"""

from __future__ import annotations

from json.encoder import encode_basestring_ascii
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from operator import itemgetter

import sqlalchemy as sa
from pydantic import ValidationError

from services.sampling.config import SamplingSettings
from services.sampling.domain import (
    Allocation,
    AllocationError,
    AllocationRules,
    ExclusionReason,
    Margins,
    SampleError,
    StratumKey,
    adjust,
    allocate,
    draw_sample,
    new_seed,
)
from services.sampling.models import Draw, FrameDelivery, RoundAllocation, SampledUnit
from services.sampling.schemas import (
    AllocationRequest,
    AllocationTotals,
    AllocationView,
    AllocationWarningOut,
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
from shared.bus import UnitOfWork
from shared.events import Envelope, SampleDrawn, StratumSummary

SCHEMA = "sampling"
REASONS = [r.value for r in ExclusionReason]
# The SQL below hard-codes the domain's precedence; fail at import if the domain changes it.
assert REASONS == ["forskerbeskyttet", "deceased", "emigrated", "recently_sampled"], REASONS
BAND_VARIABLES = ("gender", "age_band", "duration_band")


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


def _recent_sql(recent_draws: list[uuid.UUID], param: str) -> str:
    # Without earlier draws a constant, so the planner does no anti-join probe per unit.
    if not recent_draws:
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
    raw = await _raw(uow)
    rows = await raw.fetch(
        f"""
        WITH f AS (
            SELECT d.kommunekode, fu.maalgruppe, fu.forskerbeskyttet AS fb, fu.deceased AS de,
                   fu.emigrated AS em, {_recent_sql(recent_draws, "$2")} AS rs
            FROM {SCHEMA}.frame_unit fu JOIN {SCHEMA}.frame_delivery d ON d.delivery_id = fu.delivery_id
            WHERE d.round_id = $1 AND d.active
        )
        SELECT kommunekode, maalgruppe,
               CASE WHEN fb THEN 'forskerbeskyttet' WHEN de THEN 'deceased' WHEN em THEN 'emigrated'
                    WHEN rs THEN 'recently_sampled' END AS reason,
               count(*) AS n,
               count(*) FILTER (WHERE fb) AS fb, count(*) FILTER (WHERE de) AS de,
               count(*) FILTER (WHERE em) AS em, count(*) FILTER (WHERE rs) AS rs
        FROM f GROUP BY 1, 2, 3 ORDER BY 1, 2
        """,
        round_id,
        *([recent_draws] if recent_draws else []),
    )
    counts = FrameCounts()
    for kommunekode, maalgruppe, reason, n, *flags in rows:
        key = (kommunekode, maalgruppe)
        counts.population[key] = counts.population.get(key, 0) + n
        counts.eligible.setdefault(key, 0)
        if reason is None:
            counts.eligible[key] += n
        else:
            counts.excluded.setdefault(key, {})[reason] = n
        for reason_name, flagged in zip(REASONS, flags):
            counts.flags[reason_name] += flagged
    return counts


async def frame_summary(uow: UnitOfWork, settings: SamplingSettings, round_id: str) -> FrameSummary:
    # One snapshot for the reference date, the recent draws and the counts: a delivery that
    # becomes active between those reads would otherwise be counted without its exclusions.
    await uow.session.execute(sa.text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY"))
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


def allocation_table(allocation: Allocation, counts: FrameCounts) -> dict:
    """The table an operator reviews: per stratum and per municipality (JSON-ready)."""
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
        "municipalities": [m.model_dump() for m in municipalities],
        "strata": [s.model_dump() for s in strata],
    }


def _overrides(stored: RoundAllocation) -> dict[StratumKey, int]:
    return {parse_stratum(k): n for k, n in stored.overrides.items()}


def _view(stored: RoundAllocation) -> AllocationView:
    counts = FrameCounts.from_json(stored.frame_counts)
    rules = AllocationRules.model_validate(stored.rules)
    allocation = compute_allocation(counts, rules, _overrides(stored))
    return AllocationView(
        round_id=stored.round_id,
        status=stored.status,
        rules=rules,
        recent_rounds=stored.recent_rounds,
        updated_by=stored.updated_by,
        updated_at=stored.updated_at,
        confirmed_by=stored.confirmed_by,
        **allocation_table(allocation, counts),
    )


async def _ensure_not_drawn(uow: UnitOfWork, round_id: str) -> None:
    if await uow.session.scalar(sa.select(Draw.id).where(Draw.round_id == round_id)):
        raise DrawExists(round_id)


async def preview_allocation(
    uow: UnitOfWork, settings: SamplingSettings, round_id: str, request: AllocationRequest, actor: str
) -> AllocationView:
    """Compute and store the round's proposed allocation from rules (operator overrides of an
    earlier proposal are dropped: new rules, new starting point)."""
    await _ensure_not_drawn(uow, round_id)
    rules = merge_rules(settings.allocation_rules, request.rules)
    recent_rounds = request.recent_rounds if request.recent_rounds is not None else settings.exclude_sampled_in_last_rounds
    reference_date = await round_reference_date(uow, round_id)
    counts = await count_frame(uow, round_id, await recent_draw_ids(uow, round_id, reference_date, recent_rounds))
    if not counts.population:
        raise EmptyFrame(round_id)
    compute_allocation(counts, rules)  # validates (e.g. a group without a response rate)
    stored = await uow.session.get(RoundAllocation, round_id, with_for_update=True)
    if stored is None:
        stored = RoundAllocation(round_id=round_id)
        uow.session.add(stored)
    stored.rules = rules.model_dump(mode="json")
    stored.recent_rounds = recent_rounds
    stored.overrides = {}
    stored.frame_counts = counts.to_json()
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


def _margins(rows: list, columns: Mapping[str, int]) -> Margins:
    """Population margins of the eligible frame, as domain.margins() counts them; Counter over
    zipped columns counts in C, a per-unit loop over 500,000 citizens would not."""
    kode = list(map(itemgetter(columns["kommunekode"]), rows))
    strata = Counter(zip(kode, map(itemgetter(columns["maalgruppe"]), rows)))
    municipalities = Counter(kode)
    variables = {name: Counter(zip(kode, map(itemgetter(columns[name]), rows))) for name in BAND_VARIABLES}
    return Margins(
        strata=dict(sorted(strata.items())),
        municipalities=dict(sorted(municipalities.items())),
        variables={n: dict(sorted(c.items())) for n, c in variables.items()},
    )


def margins_json(margins: Margins) -> dict:
    return {
        kode: {"population": n, "margins": margins.for_municipality(kode)}
        for kode, n in margins.municipalities.items()
    }


async def _load_eligible(uow: UnitOfWork, round_id: str, recent_draws: list[uuid.UUID]) -> list:
    raw = await _raw(uow)
    return await raw.fetch(
        f"""
        SELECT fu.pseudonym, d.kommunekode, fu.maalgruppe, fu.gender, fu.age_band, fu.duration_band, fu.delivery_id,
               fu.contact::text
        FROM {SCHEMA}.frame_unit fu JOIN {SCHEMA}.frame_delivery d ON d.delivery_id = fu.delivery_id
        WHERE d.round_id = $1 AND d.active
          AND NOT fu.forskerbeskyttet AND NOT fu.deceased AND NOT fu.emigrated
          AND NOT {_recent_sql(recent_draws, "$2")}
        """,
        round_id,
        *([recent_draws] if recent_draws else []),
    )


_ELIGIBLE_COLUMNS = {"pseudonym": 0, "kommunekode": 1, "maalgruppe": 2, "gender": 3, "age_band": 4, "duration_band": 5, "delivery_id": 6, "contact": 7}


async def draw(
    uow: UnitOfWork,
    settings: SamplingSettings,
    *,
    round_id: str,
    seed: int | None,
    sample_per_stratum: int | None,
    drawn_by: str,
) -> DrawResult:
    """Draw the round's sample from its stored allocation (confirmed or latest proposal; the
    service's default rules when none was previewed), record it and publish sample.drawn."""
    session = uow.session
    # JIT compilation costs PostgreSQL ~0.5 s per big statement here (and asyncpg's type
    # introspection before the COPY); these queries are simple scans, so it never pays off.
    await session.execute(sa.text("SET LOCAL jit = off"))
    # Lock the active frame: a re-delivery completing now waits until the draw has committed,
    # so the frame counted, the frame drawn from and the contacts published are one frame.
    deliveries = (
        await session.execute(
            sa.select(FrameDelivery.delivery_id, FrameDelivery.reference_date)
            .where(FrameDelivery.round_id == round_id, FrameDelivery.active.is_(True))
            .with_for_update(read=True)
        )
    ).all()
    await _ensure_not_drawn(uow, round_id)
    if not deliveries:
        raise EmptyFrame(round_id)
    reference_date = max(d.reference_date for d in deliveries)

    stored = await session.get(RoundAllocation, round_id, with_for_update=True)
    if stored is not None:
        rules = AllocationRules.model_validate(stored.rules)
        recent_rounds = stored.recent_rounds
        overrides = _overrides(stored)
    else:
        rules, recent_rounds, overrides = settings.allocation_rules, settings.exclude_sampled_in_last_rounds, {}
    recent_draws = await recent_draw_ids(uow, round_id, reference_date, recent_rounds)
    counts = await count_frame(uow, round_id, recent_draws)
    if stored is not None and counts.eligible != FrameCounts.from_json(stored.frame_counts).eligible:
        raise StaleAllocation(round_id)
    allocation = compute_allocation(counts, rules, overrides)
    if sample_per_stratum is not None:
        allocation = compute_allocation(
            counts, rules, {**overrides, **{k: min(sample_per_stratum, s.population) for k, s in allocation.strata.items()}}
        )

    rows = await _load_eligible(uow, round_id, recent_draws)
    frame = list(zip(map(itemgetter(0), rows), zip(map(itemgetter(1), rows), map(itemgetter(2), rows))))
    seed = seed if seed is not None else new_seed()
    try:
        sample = draw_sample(frame, allocation, seed)
    except SampleError as exc:
        # The counts and the rows come from one locked frame, so this is a data problem
        # (e.g. one pseudonym delivered by two municipalities), not a race.
        raise InvalidAllocation(str(exc)) from None
    margins = _margins(rows, _ELIGIBLE_COLUMNS)

    draw_id = uuid.uuid4()
    table = allocation_table(allocation, counts)
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
                margins=margins_json(margins),
                population=len(rows),
                sampled=len(sample),
            )
        )
    except sa.exc.IntegrityError:  # a concurrent draw of the same round won the race
        raise DrawExists(round_id) from None
    raw = await _raw(uow)
    by_id = {row[0]: row for row in rows}
    await raw.copy_records_to_table(
        SampledUnit.__tablename__,
        schema_name=SCHEMA,
        columns=_SAMPLED_COLUMNS,
        records=_sampled_records(draw_id, sample, by_id),
    )
    await raw.copy_records_to_table(
        "outbox",
        schema_name=SCHEMA,
        columns=["event_id", "topic", "key", "envelope"],
        records=_sample_drawn_events(settings, round_id, draw_id, seed, allocation, sample, by_id),
    )
    await uow.commit()
    return DrawResult(
        draw_id=draw_id,
        round_id=round_id,
        seed=seed,
        sampled=len(sample),
        population=len(rows),
        exclusions=counts.exclusions,
        strata=[
            DrawStratum(
                stratum=stratum_key(*k),
                kommunekode=s.kommunekode,
                maalgruppe=s.maalgruppe,
                population=s.population,
                sample=s.sample,
                inclusion_probability=s.inclusion_probability,
                design_weight=s.population / s.sample if s.sample else 0.0,
            )
            for k, s in allocation.strata.items()
        ],
    )


def _sampled_records(draw_id: uuid.UUID, sample, by_id: Mapping[str, tuple]) -> Iterable[tuple]:
    for seq, unit in enumerate(sample):
        row = by_id[unit.unit_id]
        yield (
            draw_id,
            unit.unit_id,
            unit.kommunekode,
            f"{unit.kommunekode}:{unit.maalgruppe}",
            unit.inclusion_probability,
            unit.design_weight,
            unit.maalgruppe,
            row[3],
            row[4],
            row[5],
            row[6],
            seq,
        )


def _sample_drawn_events(
    settings: SamplingSettings,
    round_id: str,
    draw_id: uuid.UUID,
    seed: int,
    allocation: Allocation,
    sample: list,
    by_id: Mapping[str, tuple],
) -> list[tuple]:
    """Outbox rows of the sample.drawn chunks, per municipality, in the draw's order.

    Each envelope is built by the shared models with an empty `persons` list (so everything but
    the persons is validated against the contract), and the persons' JSON is spliced in as text:
    130,000 pydantic models and a dict round trip of every sealed contact would take seconds.
    The contact is copied verbatim from the frame, still sealed. Tests parse every event back
    with SampleDrawn."""
    summaries: dict[str, list[StratumSummary]] = defaultdict(list)
    for key, s in allocation.strata.items():
        summaries[s.kommunekode].append(StratumSummary(stratum=stratum_key(*key), maalgruppe=s.maalgruppe, population=s.population, sample=s.sample))
    by_kommune: dict[str, list[str]] = defaultdict(list)
    quoted: dict[str, str] = {}

    def q(value: str) -> str:  # few distinct values (groups, bands, strata): quote each once
        if (text := quoted.get(value)) is None:
            text = quoted[value] = encode_basestring_ascii(value)
        return text

    for unit in sample:
        row = by_id[unit.unit_id]
        by_kommune[unit.kommunekode].append(
            f'{{"pseudonym":{encode_basestring_ascii(unit.unit_id)},"maalgruppe":{q(unit.maalgruppe)},'
            f'"stratum":{q(unit.kommunekode + ":" + unit.maalgruppe)},"bands":{{"gender":{q(row[3])},'
            f'"age_band":{q(row[4])},"duration_band":{q(row[5])}}},'
            f'"inclusion_probability":{unit.inclusion_probability!r},"design_weight":{unit.design_weight!r},'
            f'"contact":{row[7]}}}'
        )
    size = settings.event_chunk_size
    records = []
    for kommunekode, persons in sorted(by_kommune.items()):
        chunk_count = -(-len(persons) // size)
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
            persons_json = ",".join(persons[chunk_no * size : (chunk_no + 1) * size])
            records.append((envelope.event_id, payload.topic, payload.key(), f"{text[: -len(_NO_PERSONS)]}\"persons\":[{persons_json}]}}}}"))
    return records


_NO_PERSONS = '"persons":[]}}'


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
