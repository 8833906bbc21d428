"""What the operator and analytics see of the frame, the allocation and the draw: tables and
events built from counts the other modules computed, and the read-only views."""

from __future__ import annotations

import uuid
from collections import Counter, defaultdict
from collections.abc import Mapping
from datetime import UTC, datetime

import sqlalchemy as sa

from services.sampling.config import SamplingSettings
from services.sampling.domain import Allocation, AllocationRules, Margins
from services.sampling.models import Draw, RoundAllocation
from services.sampling.schemas import (
    AllocationTotals,
    AllocationWarningOut,
    CapConflictOut,
    DrawMargins,
    FrameSummary,
    MunicipalityAllocationOut,
    MunicipalityMargins,
    StratumAllocationOut,
    StratumCount,
)
from services.sampling.service.frame import FrameCounts, count_frame, recent_draw_ids, round_reference_date, stratum_key
from services.sampling.service.rounds import require_round
from shared.bus import UnitOfWork
from shared.events import Bands, FrameMargins, PopulationCell, SamplingMunicipality, SamplingProgress


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


def frame_margins(
    round_id: str, draw_id: uuid.UUID, cells: list[tuple[str, str, str, str, str, int]], chunk_size: int
) -> list[FrameMargins]:
    """The frame.margins events of a draw: per municipality, its eligible frame's cells
    (``cells``: kommunekode, maalgruppe, gender, age band, duration band, citizens, as
    frame.scan_draw_frame counts them) in chunks of at most ``chunk_size`` cells, the last one
    final with the chunk count and the municipality's population."""
    by_kommune: dict[str, list[PopulationCell]] = defaultdict(list)
    for kommunekode, maalgruppe, gender, age_band, duration_band, n in cells:
        if n > 0:
            by_kommune[kommunekode].append(
                PopulationCell(maalgruppe=maalgruppe, bands=Bands(gender=gender, age_band=age_band, duration_band=duration_band), population=n)
            )
    events = []
    for kommunekode in sorted(by_kommune):
        of_kommune = by_kommune[kommunekode]
        chunk_count = -(-len(of_kommune) // chunk_size)
        for chunk_no in range(chunk_count):
            final = chunk_no == chunk_count - 1
            events.append(
                FrameMargins(
                    round_id=round_id, kommunekode=kommunekode, draw_id=draw_id, chunk_no=chunk_no, final=final,
                    chunk_count=chunk_count if final else None,
                    population=sum(c.population for c in of_kommune) if final else None,
                    cells=of_kommune[chunk_no * chunk_size:(chunk_no + 1) * chunk_size],
                )
            )
    return events


def margins_json(margins: Margins) -> dict:
    return {
        kode: {"population": n, "margins": margins.for_municipality(kode)}
        for kode, n in margins.municipalities.items()
    }


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
