"""Analytics' read side: a round's publication is computed from the tallies, cached by the
round's version, and filtered per caller. Nothing here ever returns a response row."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import sqlalchemy as sa

from services.analytics.domain.publication import (
    NATIONAL,
    AnswerCount,
    RateCount,
    RoundPublication,
    StratumInfo,
    build_publication,
    change_between,
    natural_key,
)
from services.analytics.models import AnswerTally, RateTally, RoundState, StratumFrame
from services.analytics.schemas import ResponseRateRow, ResponseRates
from shared.auth import Principal
from shared.bus import UnitOfWork


class RoundNotFound(LookupError):
    pass


@dataclass(frozen=True)
class RoundInfo:
    round_id: str
    questionnaire_id: str | None
    first_submitted_at: object
    version: int


class PublicationCache:
    """Publications by round, valid while the round's version is unchanged.

    Every read costs one primary-key lookup; a changed round is recomputed once (concurrent
    readers wait for the same computation) off the event loop.
    """

    def __init__(self, uow_factory: Callable[[], UnitOfWork], min_count: int, caution_below: int) -> None:
        self._uow_factory = uow_factory
        self.min_count = min_count
        self.caution_below = caution_below
        self._entries: dict[str, tuple[int, RoundPublication]] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def get(self, uow: UnitOfWork, round_id: str) -> RoundPublication:
        info = await round_info(uow, round_id)
        if info is None:
            raise RoundNotFound(round_id)
        return await self.get_for(uow, info)

    async def get_for(self, uow: UnitOfWork, info: RoundInfo) -> RoundPublication:
        cached = self._entries.get(info.round_id)
        if cached and cached[0] >= info.version:
            return cached[1]
        async with self._locks.setdefault(info.round_id, asyncio.Lock()):
            cached = self._entries.get(info.round_id)
            if cached and cached[0] >= info.version:
                return cached[1]
            # Version and tallies from one snapshot, so the entry never claims a state it lacks.
            async with self._uow_factory() as snapshot:
                await snapshot.session.execute(sa.text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY"))
                info = await round_info(snapshot, info.round_id) or info
                strata, answers, rates = await load_inputs(snapshot, info.round_id)
            publication = await asyncio.to_thread(
                build_publication,
                info.round_id,
                info.questionnaire_id,
                strata,
                answers,
                rates,
                min_count=self.min_count,
                caution_below=self.caution_below,
            )
            self._entries[info.round_id] = (info.version, publication)
            return publication


async def round_info(uow: UnitOfWork, round_id: str) -> RoundInfo | None:
    row = (await uow.session.execute(sa.select(RoundState).where(RoundState.round_id == round_id))).scalar_one_or_none()
    if row is None:
        return None
    return RoundInfo(row.round_id, row.questionnaire_id, row.first_submitted_at, row.version)


async def list_rounds(uow: UnitOfWork) -> list[RoundInfo]:
    rows = (await uow.session.execute(sa.select(RoundState))).scalars().all()
    infos = [RoundInfo(r.round_id, r.questionnaire_id, r.first_submitted_at, r.version) for r in rows]
    # Chronological by first answer (rounds without answers last), then by id.
    return sorted(infos, key=lambda r: (r.first_submitted_at is None, r.first_submitted_at or 0, natural_key(r.round_id)))


async def load_inputs(uow: UnitOfWork, round_id: str) -> tuple[dict[str, StratumInfo], list[AnswerCount], list[RateCount]]:
    s = uow.session
    rates = [
        RateCount(r.stratum, r.kommunekode, r.maalgruppe, r.arm, r.invited, r.answered)
        for r in (await s.execute(sa.select(RateTally).where(RateTally.round_id == round_id))).scalars()
    ]
    frame = (await s.execute(sa.select(StratumFrame).where(StratumFrame.round_id == round_id))).scalars().all()
    t = AnswerTally
    grouped = (
        await s.execute(
            sa.select(
                t.stratum,
                sa.case(
                    (sa.func.grouping(t.gender) == 0, "gender"),
                    (sa.func.grouping(t.age_band) == 0, "age_band"),
                    (sa.func.grouping(t.duration_band) == 0, "duration_band"),
                    else_="total",
                ),
                sa.func.coalesce(t.gender, t.age_band, t.duration_band, "total"),
                t.question,
                t.code,
                sa.func.sum(t.n),
            )
            .where(t.round_id == round_id)
            .group_by(
                sa.text(
                    "GROUPING SETS ((stratum, question, code), (stratum, gender, question, code), "
                    "(stratum, age_band, question, code), (stratum, duration_band, question, code))"
                )
            )
        )
    ).all()
    answers = [AnswerCount(h, dim, lvl, q, code, int(n)) for h, dim, lvl, q, code, n in grouped]

    strata: dict[str, StratumInfo] = {}
    respondents: dict[str, int] = {}
    for r in rates:
        respondents[r.stratum] = respondents.get(r.stratum, 0) + r.answered
        strata.setdefault(r.stratum, StratumInfo(r.kommunekode, r.maalgruppe, 0, None))
    for f in frame:
        strata.setdefault(f.stratum, StratumInfo(f.kommunekode, f.maalgruppe, 0, None))
    population = {f.stratum: f.population for f in frame}
    strata = {
        h: StratumInfo(info.kommunekode, info.maalgruppe, respondents.get(h, 0), population.get(h))
        for h, info in strata.items()
    }
    return strata, answers, rates


# -- filtering ---------------------------------------------------------------------------------------


def visible(rows: Iterable[dict], principal: Principal) -> list[dict]:
    """A municipality sees its own rows and the national ones; KL (kommuner:all) sees all."""
    return [r for r in rows if r["kommunekode"] == NATIONAL or principal.may_act_for(r["kommunekode"])]


def select_rows(rows: Iterable[dict], filters: dict[str, object]) -> list[dict]:
    wanted = {k: v for k, v in filters.items() if v is not None}
    return [r for r in rows if all(r.get(k) == v for k, v in wanted.items())]


# -- response rates (the original summary endpoint) ---------------------------------------------------


async def response_rates(uow: UnitOfWork, cache: PublicationCache, round_id: str, principal: Principal) -> ResponseRates:
    try:
        publication = await cache.get(uow, round_id)
        rows = [r for r in publication.rate_rows if r["dimension"] == "maalgruppe" and r["level"] == "total"]
    except RoundNotFound:
        rows = []
    return ResponseRates(
        round_id=round_id,
        suppression_threshold=cache.min_count,
        rows=[
            ResponseRateRow(
                kommunekode=r["kommunekode"],
                invited=r["invited"],
                answers=r["answers"],
                response_rate=r["response_rate"],
                suppressed=r["suppressed"],
                caution=r["caution"],
            )
            for r in visible(rows, principal)
        ],
    )


# -- trends ---------------------------------------------------------------------------------------------

TREND_INDICATORS = ("mean", "top2_share")
TREND_COLUMNS = (
    "round_id",
    "previous_round_id",
    "questionnaire_id",
    "question",
    "kommunekode",
    "indicator",
    "value",
    "se",
    "previous_value",
    "previous_se",
    "change",
    "change_se",
    "z",
    "p_value",
    "significant",
)


async def trends(uow: UnitOfWork, cache: PublicationCache, questionnaire_id: str | None = None) -> list[dict]:
    """Per round, question, municipality (and national) total: the estimate and its change since
    the previous round of the same questionnaire, flagged when significant (z-test, 5 %)."""
    rounds = [r for r in await list_rounds(uow) if r.questionnaire_id and (questionnaire_id in (None, r.questionnaire_id))]
    out: list[dict] = []
    previous_by_questionnaire: dict[str, tuple[str, dict]] = {}
    for info in rounds:
        publication = await cache.get_for(uow, info)
        totals = {
            (r["question"], r["kommunekode"]): r
            for r in publication.indicator_rows
            if r["dimension"] == "maalgruppe" and r["level"] == "total"
        }
        previous_round, previous = previous_by_questionnaire.get(info.questionnaire_id, (None, {}))
        for (question, kommune), row in totals.items():
            before = previous.get((question, kommune))
            for ind in TREND_INDICATORS:
                value, se = row[ind], row[f"{ind}_se"]
                trend = {
                    "round_id": info.round_id,
                    "previous_round_id": previous_round,
                    "questionnaire_id": info.questionnaire_id,
                    "question": question,
                    "kommunekode": kommune,
                    "indicator": ind,
                    "value": value,
                    "se": se,
                    "previous_value": None if before is None else before[ind],
                    "previous_se": None if before is None else before[f"{ind}_se"],
                    "change": None,
                    "change_se": None,
                    "z": None,
                    "p_value": None,
                    "significant": None,
                }
                if value is not None and trend["previous_value"] is not None:
                    change = change_between((trend["previous_value"], trend["previous_se"]), (value, se))
                    trend.update(change=change.difference, change_se=change.se, z=change.z, p_value=change.p_value, significant=change.significant)
                out.append(trend)
        previous_by_questionnaire[info.questionnaire_id] = (info.round_id, totals)
    return out
