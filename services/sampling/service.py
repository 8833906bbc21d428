"""Sampling's service functions: summarise the frame, draw the sample, announce it."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from collections import defaultdict

import sqlalchemy as sa

from services.sampling.config import SamplingSettings
from services.sampling.models import Draw, FrameDelivery, FrameUnit, SampledUnit
from services.sampling.schemas import DrawResult, FrameSummary, StratumAllocation, StratumCount
from shared.bus import UnitOfWork
from shared.crypto import SealedContact
from shared.events import Bands, SampledPerson, SampleDrawn, StratumSummary


class DrawExists(Exception):
    pass


class EmptyFrame(Exception):
    pass


def stratum_key(kommunekode: str, maalgruppe: str) -> str:
    return f"{kommunekode}:{maalgruppe}"


async def frame_summary(uow: UnitOfWork, round_id: str) -> FrameSummary:
    rows = (
        await uow.session.execute(
            sa.select(
                FrameDelivery.kommunekode,
                FrameUnit.maalgruppe,
                sa.func.count(),
                sa.func.count().filter(FrameUnit.forskerbeskyttet.is_(False)),
            )
            .join(FrameUnit, FrameUnit.delivery_id == FrameDelivery.delivery_id)
            .where(FrameDelivery.round_id == round_id, FrameDelivery.active.is_(True))
            .group_by(FrameDelivery.kommunekode, FrameUnit.maalgruppe)
            .order_by(FrameDelivery.kommunekode, FrameUnit.maalgruppe)
        )
    ).all()
    return FrameSummary(
        round_id=round_id,
        municipalities=len({r[0] for r in rows}),
        strata=[StratumCount(kommunekode=k, maalgruppe=m, population=n, eligible=e) for k, m, n, e in rows],
    )


def _sort_key(seed: int, pseudonym: str) -> bytes:
    # A keyed hash of the unit as its random number: the draw depends only on the frame's
    # content and the seed, never on the order rows come back from the database.
    return hashlib.sha256(f"{seed}:{pseudonym}".encode()).digest()


async def draw_sample(
    uow: UnitOfWork, settings: SamplingSettings, *, round_id: str, seed: int | None, sample_per_stratum: int, drawn_by: str
) -> DrawResult:
    session = uow.session
    if (await session.execute(sa.select(Draw.id).where(Draw.round_id == round_id))).first():
        raise DrawExists(round_id)
    units = (
        await session.execute(
            sa.select(FrameDelivery.kommunekode, FrameUnit)
            .join(FrameUnit, FrameUnit.delivery_id == FrameDelivery.delivery_id)
            .where(FrameDelivery.round_id == round_id, FrameDelivery.active.is_(True), FrameUnit.forskerbeskyttet.is_(False))
        )
    ).all()
    if not units:
        raise EmptyFrame(round_id)
    seed = seed if seed is not None else secrets.randbits(62)

    strata: dict[str, list[tuple[str, FrameUnit]]] = defaultdict(list)
    for kommunekode, unit in units:
        strata[stratum_key(kommunekode, unit.maalgruppe)].append((kommunekode, unit))

    draw = Draw(id=uuid.uuid4(), round_id=round_id, seed=seed, drawn_by=drawn_by, allocation={})
    session.add(draw)
    await session.flush()

    allocations: list[StratumAllocation] = []
    by_kommune: dict[str, list[SampledPerson]] = defaultdict(list)
    summaries: dict[str, list[StratumSummary]] = defaultdict(list)
    rows = []
    for stratum, members in sorted(strata.items()):
        population = len(members)
        n = min(sample_per_stratum, population)
        chosen = sorted(members, key=lambda m: _sort_key(seed, m[1].pseudonym))[:n]
        probability = n / population
        kommunekode, maalgruppe = members[0][0], members[0][1].maalgruppe
        allocations.append(StratumAllocation(stratum=stratum, kommunekode=kommunekode, maalgruppe=maalgruppe, population=population, sample=n))
        summaries[kommunekode].append(StratumSummary(stratum=stratum, maalgruppe=maalgruppe, population=population, sample=n))
        for _, unit in chosen:
            rows.append(
                {
                    "draw_id": draw.id,
                    "pseudonym": unit.pseudonym,
                    "kommunekode": kommunekode,
                    "stratum": stratum,
                    "inclusion_probability": probability,
                    "design_weight": 1 / probability,
                }
            )
            by_kommune[kommunekode].append(
                SampledPerson(
                    pseudonym=unit.pseudonym,
                    maalgruppe=maalgruppe,
                    stratum=stratum,
                    bands=Bands(gender=unit.gender, age_band=unit.age_band, duration_band=unit.duration_band),
                    inclusion_probability=probability,
                    design_weight=1 / probability,
                    contact=SealedContact.model_validate(unit.contact),
                )
            )
    draw.allocation = {"strata": [a.model_dump() for a in allocations]}
    await session.execute(sa.insert(SampledUnit), rows)

    size = settings.event_chunk_size
    for kommunekode, persons in sorted(by_kommune.items()):
        chunks = [persons[i : i + size] for i in range(0, len(persons), size)]
        for chunk_no, chunk in enumerate(chunks):
            final = chunk_no == len(chunks) - 1
            uow.publish(
                SampleDrawn(
                    round_id=round_id,
                    kommunekode=kommunekode,
                    draw_id=draw.id,
                    seed=seed,
                    chunk_no=chunk_no,
                    final=final,
                    chunk_count=len(chunks) if final else None,
                    strata=summaries[kommunekode] if final else [],
                    persons=chunk,
                ),
                correlation_id=str(draw.id),
            )
    await uow.commit()
    return DrawResult(draw_id=draw.id, round_id=round_id, seed=seed, sampled=len(rows), strata=allocations)
