"""The dashboard's reads and writes of the database, as service functions taking the unit of
work (the router holds none): a municipality's targets, and the counts behind the
representativeness figures."""

from __future__ import annotations

import asyncio

import sqlalchemy as sa

from services.analytics.dashboard import representativeness
from services.analytics.dashboard.models import DashboardTarget
from services.analytics.overview.service import sampled_and_answered
from shared.bus import UnitOfWork

INDICATOR_RANGES = {"mean": (1.0, 5.0), "top2_share": (0.0, 1.0)}  # what a target of each indicator may be


class BadTarget(ValueError):
    """A target the form cannot set (the message says what is wrong)."""


async def targets_of(uow: UnitOfWork, kommune: str) -> dict[tuple[str, str], float]:
    """The municipality's targets: (question, indicator) -> value."""
    rows = (await uow.session.execute(sa.select(DashboardTarget).where(DashboardTarget.kommunekode == kommune))).scalars()
    return {(r.question, r.indicator): r.value for r in rows}


def target_value(indicator: str, text: str) -> float:
    """The form's value (decimal comma or point) as a target of ``indicator``, within its range."""
    try:
        number = float(text.replace(",", "."))
    except ValueError:
        raise BadTarget("the target must be a number") from None
    low, high = INDICATOR_RANGES[indicator]
    if not low <= number <= high:
        raise BadTarget(f"the target must lie in [{low}, {high}]")
    return number


async def set_target(uow: UnitOfWork, kommune: str, question: str, indicator: str, value: float, set_by: str) -> None:
    row = await uow.session.get(DashboardTarget, (kommune, question, indicator))
    if row is None:
        uow.session.add(DashboardTarget(kommunekode=kommune, question=question, indicator=indicator, value=value, set_by=set_by))
    else:
        row.value, row.set_by, row.updated_at = value, set_by, sa.func.now()
    await uow.commit()


async def delete_target(uow: UnitOfWork, kommune: str, question: str, indicator: str) -> None:
    await uow.session.execute(sa.delete(DashboardTarget).filter_by(kommunekode=kommune, question=question, indicator=indicator))
    await uow.commit()


# The figures per (round, release version, sampled citizens, municipality, threshold, reader
# names municipalities, what the release published): a release's answers never change, the country's model is the costly part.
_FIGURES: dict[tuple, representativeness.Figures | None] = {}


async def representativeness_of(uow: UnitOfWork, round_id: str, version: int, kommuner: list[str], min_count: int, *,
                                names_municipalities: bool,
                                published: dict[str, dict[tuple[str, str], int | None]]) -> list[representativeness.Figures]:
    """The representativeness figures of ``kommuner`` (codes or "national") as of the release at
    round ``version``, which published ``published[kommune]`` (data.Index.published_respondents);
    those with nobody sampled are left out."""
    sampled, answered = await sampled_and_answered(uow, round_id, version)
    size = sum(int(row[-1]) for row in sampled)
    out = []
    for kommune in kommuner:
        key = (round_id, version, size, kommune, min_count, names_municipalities, frozenset(published[kommune].items()))
        if key not in _FIGURES:
            if len(_FIGURES) > 64:
                _FIGURES.clear()
            _FIGURES[key] = await asyncio.to_thread(
                representativeness.figures, sampled, answered, kommune, min_count, names_municipalities=names_municipalities,
                published=published[kommune],
            )
        if _FIGURES[key] is not None:
            out.append(_FIGURES[key])
    return out
