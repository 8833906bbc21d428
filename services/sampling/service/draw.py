"""The draw: lock the round's frame, count it, allocate, and let one statement draw, record the
sample and write the sample.drawn events into the bulk outbox (``draw_sql`` holds the draw
itself; the reference in plain Python is ``domain.draw_sample``)."""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa

from services.sampling import draw_sql
from services.sampling.config import SamplingSettings
from services.sampling.domain import Allocation, AllocationRules, SampleError, check_seed, new_seed
from services.sampling.domain.readiness import Readiness, draw_readiness
from services.sampling.models import AUDIT, Draw, FrameDelivery, RoundAllocation
from services.sampling.schemas import DrawResult, DrawStratum
from services.sampling.service.allocation import compute_allocation, ensure_not_drawn, stored_overrides
from services.sampling.service.errors import DrawExists, EmptyFrame, InvalidAllocation, RoundRefused, StaleAllocation
from services.sampling.service.frame import (
    BAND_VARIABLES,
    SCHEMA,
    DrawFrame,
    FrameCounts,
    eligible_frame_sql,
    raw_connection,
    recent_draw_ids,
    scan_draw_frame,
    stratum_key,
)
from services.sampling.service.rounds import require_round
from services.sampling.service.views import allocation_table, frame_margins, margins_json, sampling_progress
from shared.audit import record
from shared.bus import UnitOfWork
from shared.events import Bands, Envelope, SampledPerson, SampleDrawn, StratumSummary

# The draw statement writes the persons of sample.drawn v2 field by field (_draw_statement, no
# contact); fail at import if the contract's person or version changes under it.
assert (SampleDrawn.event_version, set(SampledPerson.model_fields), set(Bands.model_fields)) == (
    2,
    {"pseudonym", "maalgruppe", "stratum", "bands", "inclusion_probability", "design_weight"},
    set(BAND_VARIABLES),
), "sample.drawn's person changed: update _draw_statement and _person_fragments"


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
        eligible_frame_sql(recent_draws), first, extra=[("fragment", "text"), ("kommune_first_seq", "int"), ("chunk_base", "int")]
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


@dataclass
class _LockedRound:
    """What the draw locked and decided before counting: the round's active deliveries, the
    stored allocation (None: the service's default rules), the rules and recent rounds to draw
    with, the operator's overrides, and whether the draw is forced (readiness)."""

    deliveries: list
    stored: RoundAllocation | None
    rules: AllocationRules
    recent_rounds: int
    overrides: dict
    readiness: Readiness
    forced: bool

    @property
    def reference_date(self):
        return max(d.reference_date for d in self.deliveries)


async def _lock_round(uow: UnitOfWork, settings: SamplingSettings, round_id: str, force: bool) -> _LockedRound:
    """Step 1: one snapshot, the active frame locked, and the round allowed to be drawn.

    Lock the active frame: a re-delivery completing now waits until the draw has committed, so
    the frame counted, the frame drawn from and the persons published are one frame. One that
    was activated (or an allocation changed) after the snapshot: a serialization failure."""
    session = uow.session
    # One snapshot for the counts and the draw: what was counted is what is drawn from.
    await session.execute(sa.text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"))
    # JIT compilation never pays off for these scans and sorts. The draw sorts the eligible
    # frame (~130 MB for 500,000) and hashes it for the counts: in memory, not in temporary files.
    await session.execute(sa.text("SET LOCAL jit = off"))
    await session.execute(sa.text(f"SET LOCAL work_mem = '{_DRAW_WORK_MEM}'"))
    try:
        definition = await require_round(uow, round_id, drawing=True)
        deliveries = (
            await session.execute(
                sa.select(FrameDelivery.delivery_id, FrameDelivery.reference_date, FrameDelivery.kommunekode)
                .where(FrameDelivery.round_id == round_id, FrameDelivery.active.is_(True))
                .with_for_update(read=True)
            )
        ).all()
        await ensure_not_drawn(uow, round_id)
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
    if stored is not None:
        rules, recent_rounds, overrides = AllocationRules.model_validate(stored.rules), stored.recent_rounds, stored_overrides(stored)
    else:
        rules, recent_rounds, overrides = settings.allocation_rules, settings.exclude_sampled_in_last_rounds, {}
    return _LockedRound(deliveries, stored, rules, recent_rounds, overrides, readiness, forced=not readiness.ready)


def _allocate(locked: _LockedRound, scanned: DrawFrame, round_id: str, sample_per_stratum: int | None) -> Allocation:
    """Step 3: the allocation to draw, from the counts just taken (which must be those the
    stored allocation was computed from) and a frame without duplicates."""
    counts = scanned.counts
    if locked.stored is not None and counts.eligible != FrameCounts.from_json(locked.stored.frame_counts).eligible:
        raise StaleAllocation(round_id)
    if scanned.duplicates:
        # Counts and draw come from one locked frame, so this is a data problem (one citizen
        # delivered by two municipalities), not a race. Never log or echo the pseudonyms.
        raise InvalidAllocation(f"{scanned.duplicates} citizens occur more than once in the round's frame")
    allocation = compute_allocation(counts, locked.rules, locked.overrides)
    if sample_per_stratum is not None:
        allocation = compute_allocation(
            counts, locked.rules,
            {**locked.overrides, **{k: min(sample_per_stratum, s.population) for k, s in allocation.strata.items()}},
        )
    return allocation


def _checked_seed(seed: int | None) -> int:
    seed = seed if seed is not None else new_seed()
    try:
        check_seed(seed)
    except SampleError as exc:
        raise InvalidAllocation(str(exc)) from None
    return seed


async def _record_draw(
    uow: UnitOfWork, locked: _LockedRound, counts: FrameCounts, scanned: DrawFrame, allocation: Allocation, table: dict,
    *, draw_id: uuid.UUID, round_id: str, seed: int, drawn_by: str,
) -> None:
    """Step 4: the draw's record (seed, allocation table, rules, exclusions, margins)."""
    try:
        await uow.session.execute(
            sa.insert(Draw).values(
                id=draw_id,
                round_id=round_id,
                seed=seed,
                drawn_by=drawn_by,
                allocation=table,
                reference_date=locked.reference_date,
                rules=locked.rules.model_dump(mode="json"),
                recent_rounds=locked.recent_rounds,
                exclusions={"counts": counts.exclusions, "flags": counts.flags, "strata": {stratum_key(*k): v for k, v in counts.excluded.items()}},
                margins=margins_json(scanned.margins),
                population=sum(counts.eligible.values()),
                sampled=allocation.total_sample,
                forced_by=drawn_by if locked.forced else None,
                readiness=locked.readiness.to_json() if locked.forced else None,
            )
        )
    except sa.exc.IntegrityError:  # a concurrent draw of the same round won the race
        raise DrawExists(round_id) from None


async def _draw_in_postgres(
    uow: UnitOfWork, settings: SamplingSettings, locked: _LockedRound, allocation: Allocation, recent_draws: list[uuid.UUID],
    *, draw_id: uuid.UUID, round_id: str, seed: int,
) -> None:
    """Step 5: the one statement that draws, writes sampled_unit and the sample.drawn envelopes
    (their headers built and validated here by the shared models), checked against the
    allocation."""
    headers = _chunk_headers(settings, round_id, draw_id, seed, allocation)
    fragments, kommune_first_seq, chunk_base = _person_fragments(allocation, settings.event_chunk_size)
    # Both walk the municipalities in the same (sorted) order; a person's chunk indexes the headers.
    assert all(
        headers[base][3:5] == (s.kommunekode, 0) for s, base in zip(allocation.strata.values(), chunk_base) if s.sample
    ), "event headers and strata disagree on the municipalities' order"
    raw = await raw_connection(uow)
    statement = _draw_statement(recent_draws)
    event_ids, topics, keys, _, _, heads, tails, types, versions = map(list, zip(*headers)) if headers else ([],) * 9

    async def run(thresholds: list[int]):
        return await raw.fetchrow(
            statement,
            [d.delivery_id for d in locked.deliveries],
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
    uow.events_written()  # sample.drawn, in the bulk outbox: wake its relay at commit
    if checks["sampled"] != allocation.total_sample or checks["events"] != len(headers):
        # Counts and draw read one snapshot of the locked frame, so this cannot happen; refuse
        # rather than state wrong probabilities. Leaving without commit rolls it all back.
        raise InvalidAllocation(
            f"the draw does not match the allocation: {checks['sampled']} sampled of {allocation.total_sample}, "
            f"{checks['events']} events of {len(headers)}"
        )


def _draw_result(locked: _LockedRound, counts: FrameCounts, allocation: Allocation, *, draw_id: uuid.UUID, round_id: str, seed: int) -> DrawResult:
    return DrawResult(
        draw_id=draw_id,
        round_id=round_id,
        seed=seed,
        forced=locked.forced,
        missing=list(locked.readiness.missing),
        sampled=allocation.total_sample,
        population=sum(counts.eligible.values()),
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
    candidates recorded then (frame.scan_draw_frame; no scan of the frame's units), Python
    allocates over the ~500 strata and builds the events' headers, and one statement draws,
    writes sampled_unit and assembles the persons of the events into the outbox. `stages`, if
    given, receives seconds per stage (for the bench)."""
    clock = _Stages(stages)
    locked = await _lock_round(uow, settings, round_id, force)
    recent_draws = await recent_draw_ids(uow, round_id, locked.reference_date, locked.recent_rounds)
    clock.lap("lock")
    scanned = await scan_draw_frame(uow, round_id, recent_draws, cells=True)
    counts = scanned.counts
    clock.lap("frame counts (cells, exclusions, margins, duplicates)")
    allocation = _allocate(locked, scanned, round_id, sample_per_stratum)
    seed = _checked_seed(seed)
    draw_id = uuid.uuid4()
    stored = locked.stored
    decisions = {d["kommunekode"]: {"decided_by": d["decided_by"], "decided_at": d["decided_at"]} for d in (stored.cap_decisions if stored else [])}
    table = allocation_table(allocation, counts, decisions)
    clock.lap("allocation")
    await _record_draw(uow, locked, counts, scanned, allocation, table, draw_id=draw_id, round_id=round_id, seed=seed, drawn_by=drawn_by)
    clock.lap("draw record, event headers")
    await _draw_in_postgres(uow, settings, locked, allocation, recent_draws, draw_id=draw_id, round_id=round_id, seed=seed)
    clock.lap("draw, sampled_unit, outbox (one statement)")
    if locked.forced:
        await record(
            uow.session, AUDIT, actor=drawn_by, action="draw.forced", kind="round",
            resource={"round_id": round_id, "draw_id": str(draw_id), **locked.readiness.to_json()},
        )
    uow.publish(sampling_progress(round_id, "drawn", table, counts, locked.rules, draw_id=draw_id, forced=locked.forced))
    # The population the round estimates for, counted by cell (analytics calibrates to it).
    for event in frame_margins(round_id, draw_id, scanned.cells, settings.event_chunk_size):
        uow.publish(event)
    await uow.commit()
    clock.lap("commit")
    return _draw_result(locked, counts, allocation, draw_id=draw_id, round_id=round_id, seed=seed)


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
