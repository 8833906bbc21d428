"""Comparable municipalities and the composition-adjusted score (fair comparison).

Both are computed from the same tallies and design weights the publication uses
(``answer_tally`` cross-classified by stratum x gender x age band x duration band x question x
answer code; ``w_h = N_h / n_h`` from :func:`design_strata`), so a figure here for one
municipality equals the published one (tested).

Comparable municipalities (:func:`comparable`)
    The definition is data (``comparable_municipalities.json``, or ``DASHBOARD_COMPARABLE_FILE``):
    either fixed groups (e.g. STAR's clusters, when sourced) or, by default, the ``neighbours``
    nearest municipalities by the composition of their survey population. A municipality's
    composition is its population's share of citizens per level of target group, gender, age
    band and duration band: the frame counted at the draw (``frame.margins``, the
    ``population_cell`` table), not the respondents, whose mix leans to whoever answers. A
    round drawn before frame.margins existed has no population cells: there the target-group
    mix is the frame (N_h from ``sample.drawn``) and the other three are the published
    respondents per level. Distance = weighted mean over the variables of the dissimilarity
    index D = 1/2 sum_l |p_kl - p_jl|.

The comparison group's figure (:func:`group_cell`)
    The ratio estimator over the union of the members' strata (as a published cell, with
    Taylor SE and FPC), the members' suppressed strata weighted as one class as in a published
    total, so it tells no more than the members' published cells. Hidden when fewer than
    ``min_count`` scale answers, or when a member's published total of the question is
    suppressed (the group figure minus the published members would recover it).

Adjusted score (:func:`adjustment`): indirect standardisation by weighted regression
    A national weighted least-squares model of the answer (1..5) on target group, gender,
    age band and duration band jointly (main effects, treatment coding; weight w_h per answer),
    fitted with numpy's least squares. For every respondent the model gives the expected answer
    given only composition. For municipality k: observed O_k (its published raw score),
    expected E_k (the model's prediction at the municipality's composition: its population's
    mix, as above), and

        adjusted_k = M + (O_k - E_k),  M = the published national figure,

    i.e. the national level plus what the municipality achieves beyond what its composition
    predicts. SE: the published SE of O_k; the national fit, its composition and M are treated
    as fixed. Every input but the national fit is a published figure, so the adjusted score
    tells nothing about a municipality that its published cells do not. Shown only when the
    municipality's total and its composition are published.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import sqlalchemy as sa

from services.analytics.domain.answers import SCORES, answer_code
from services.analytics.domain.estimators import normal_quantile
from services.analytics.domain.count_estimates import StratumInfo, cell_estimates, design_strata
from services.analytics.domain.publication import DIMENSIONS, natural_key
from services.analytics.models import PopulationCell, ResponseFact, StratumFrame
from shared.bus import UnitOfWork

CONFIG_FILE = Path(__file__).with_name("comparable_municipalities.json")
Z = normal_quantile(0.95)


@lru_cache(maxsize=4)
def _config_from(path: str) -> dict:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def config() -> dict:
    return _config_from(os.environ.get("DASHBOARD_COMPARABLE_FILE", str(CONFIG_FILE)))


@dataclass(frozen=True)
class Cell:
    stratum: str
    kommunekode: str
    bands: tuple[str, str, str, str]  # maalgruppe, gender, age_band, duration_band
    code: str
    n: int


@dataclass
class RoundData:
    round_id: str
    version: int
    strata: dict[str, StratumInfo]
    design: dict
    n_total: int
    degf: int
    cells: dict[str, list[Cell]]  # question -> cells
    kommuner: list[str]
    # kommune -> variable -> level -> citizens of the population (frame.margins), where counted.
    population: dict[str, dict[str, dict[str, int]]] = field(default_factory=dict)
    _adjustments: dict = field(default_factory=dict)


def _count_facts(facts) -> tuple[Counter, Counter]:
    """Respondents per stratum and answers per cross-classified cell and code, counted from
    answer facts as the handlers count them into the tallies."""
    answered: Counter = Counter()
    tallies: Counter = Counter()
    for h, k, g, gender, age, duration, answers in facts:
        answered[(h, k, g)] += 1
        for question, value in answers.items():
            code = answer_code(value)
            if code is not None:
                tallies[(h, k, g, gender, age, duration, question, code)] += 1
    return answered, tallies


async def load(uow: UnitOfWork, round_id: str, version: int) -> RoundData:
    """The round's data as of its release at ``version``: the answer facts counted up to it
    (facts tagged up to a version are exactly what the tallies held at it), so the comparison
    and the adjusted score change only with a new release, as every published table does."""
    s = uow.session
    frame = (await s.execute(sa.select(StratumFrame).where(StratumFrame.round_id == round_id))).scalars().all()
    f = ResponseFact
    facts = (await s.execute(
        sa.select(f.stratum, f.kommunekode, f.maalgruppe, f.gender, f.age_band, f.duration_band, f.answers)
        .where(f.round_id == round_id, f.version <= version)
    )).all()
    answered, counted = await asyncio.to_thread(_count_facts, facts)
    p = PopulationCell
    population_cells = (await s.execute(
        sa.select(p.kommunekode, p.maalgruppe, p.gender, p.age_band, p.duration_band, p.population).where(p.round_id == round_id)
    )).all()
    rates = [(h, k, g, n) for (h, k, g), n in answered.items()]
    tallies = [(*key, n) for key, n in counted.items()]
    population = {fr.stratum: fr.population for fr in frame}
    strata: dict[str, StratumInfo] = {}
    for h, k, g, answered in rates:
        strata[h] = StratumInfo(k, g, int(answered or 0), population.get(h))
    for fr in frame:
        strata.setdefault(fr.stratum, StratumInfo(fr.kommunekode, fr.maalgruppe, 0, fr.population))
    cells: dict[str, list[Cell]] = defaultdict(list)
    for h, k, g, gender, age, duration, q, code, n in tallies:
        if n > 0:
            cells[q].append(Cell(h, k, (g, gender, age, duration), code, int(n)))
            strata.setdefault(h, StratumInfo(k, g, 0, population.get(h)))
    n_total = sum(x.respondents for x in strata.values())
    degf = n_total - sum(1 for x in strata.values() if x.respondents > 0)
    kommuner = sorted({x.kommunekode for x in strata.values()}, key=natural_key)
    return RoundData(round_id, version, strata, design_strata(strata), n_total, degf, dict(cells), kommuner,
                     population_mix(population_cells))


def population_mix(cells) -> dict[str, dict[str, dict[str, int]]]:
    """kommune -> variable -> level -> citizens, from population cells (kommunekode, maalgruppe,
    gender, age band, duration band, citizens)."""
    out: dict[str, dict[str, dict[str, int]]] = {}
    for k, *levels, n in cells:
        dims = out.setdefault(k, {d: {} for d in DIMENSIONS})
        for dim, lvl in zip(DIMENSIONS, levels):
            dims[dim][lvl] = dims[dim].get(lvl, 0) + int(n)
    return out


_CACHE: dict[str, RoundData] = {}
_LOCKS: dict[str, asyncio.Lock] = {}


async def round_data(uow_factory, round_id: str, version: int) -> RoundData:
    """Per round, as of its latest release's ``version`` (recomputed when a new release comes)."""
    found = _CACHE.get(round_id)
    if found and found.version >= version:
        return found
    async with _LOCKS.setdefault(round_id, asyncio.Lock()):
        found = _CACHE.get(round_id)
        if found and found.version >= version:
            return found
        async with uow_factory() as uow:
            await uow.session.execute(sa.text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY"))
            data = await load(uow, round_id, version)
        _CACHE[round_id] = data
        return data


# -- composition and comparable municipalities -------------------------------------------------------


def composition(data: RoundData, respondents: Mapping[str, Mapping[str, Mapping[str, int | None]]]) -> dict[str, dict[str, dict[str, float]]]:
    """kommune -> variable -> level -> share of the survey population.

    Where the round's population was counted at the draw (``data.population``), the mix is the
    population's, every variable from it: the fair comparison adjusts for who lives in the
    municipality, not for who answered. Otherwise (a round drawn before frame.margins) from
    published figures only: the target-group mix is the frame's (N_h of ``sample.drawn``), the
    other mixes are the published respondents per level (``respondents``: kommune -> dimension
    -> level -> people, None where suppressed), and a municipality with a suppressed level has
    no composition (its mix would have to come from figures that are not published: weighted
    shares per breakdown give away how each stratum splits over it, see
    docs/analytics-method.md)."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for k, mix in data.population.items():
        totals = {dim: math.fsum(levels.values()) for dim, levels in mix.items()}
        if all(totals.values()):
            out[k] = {dim: {lvl: v / totals[dim] for lvl, v in levels.items()} for dim, levels in mix.items()}
    frame: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for info in data.strata.values():
        if info.population:
            frame[info.kommunekode][info.maalgruppe] += info.population
    for k, dims in respondents.items():
        if k in data.population:
            continue
        if k not in frame or any(n is None for levels in dims.values() for n in levels.values()):
            continue
        mix = {"maalgruppe": dict(frame[k])}
        mix.update({dim: dict(levels) for dim, levels in dims.items() if dim != "maalgruppe"})
        shares = {}
        for dim, levels in mix.items():
            total = math.fsum(levels.values())
            if not total:
                break
            shares[dim] = {lvl: v / total for lvl, v in levels.items()}
        else:
            out[k] = shares
    return out


def distance(a: dict[str, dict[str, float]], b: dict[str, dict[str, float]], weights: dict[str, float]) -> float:
    """Weighted mean over the variables of the dissimilarity index 1/2 sum |p_a - p_b|."""
    parts, total = [], 0.0
    for dim, w in weights.items():
        levels = set(a.get(dim, {})) | set(b.get(dim, {}))
        parts.append(w * 0.5 * math.fsum(abs(a.get(dim, {}).get(lvl, 0.0) - b.get(dim, {}).get(lvl, 0.0)) for lvl in levels))
        total += w
    return math.fsum(parts) / total if total else 0.0


@dataclass
class Comparable:
    method: str  # composition | groups
    members: list[tuple[str, float | None]]  # (kommunekode, distance)
    group_name: dict | None = None
    enough: bool = True

    @property
    def kommuner(self) -> list[str]:
        return [k for k, _ in self.members]


def comparable(compositions: dict[str, dict], kommune: str, cfg: dict | None = None) -> Comparable:
    cfg = cfg or config()
    if cfg.get("method") == "groups" and cfg.get("groups"):
        for group in cfg["groups"]:
            if kommune in group["kommuner"]:
                members = [(k, None) for k in group["kommuner"] if k != kommune and k in compositions]
                return Comparable("groups", members, group.get("name"), len(members) >= cfg.get("min_members", 2))
        return Comparable("groups", [], None, False)
    own = compositions.get(kommune)
    if own is None:
        return Comparable("composition", [], None, False)
    weights = cfg.get("variables") or {d: 1.0 for d in DIMENSIONS}
    ranked = sorted(((distance(own, comp, weights), k) for k, comp in compositions.items() if k != kommune),
                    key=lambda x: (x[0], natural_key(x[1])))
    members = [(k, d) for d, k in ranked[: int(cfg.get("neighbours", 5))]]
    return Comparable("composition", members, None, len(members) >= int(cfg.get("min_members", 2)))


# -- the comparison group's figure ----------------------------------------------------------------------


@dataclass(frozen=True)
class GroupCell:
    mean: float | None
    se: float | None
    top2_share: float | None
    n_valid: int
    suppressed: bool
    suppression: str | None  # primary | secondary | None
    caution: bool


_POOL = "~suppressed strata"


def group_cell(data: RoundData, question: str, kommuner: list[str], member_suppressed: bool, min_count: int,
               caution_below: int, hidden: set[tuple[str, str]] = frozenset()) -> GroupCell:
    """The group's figure, weighted stratum by stratum as a published total is: the members'
    suppressed strata (``hidden``: (kommunekode, maalgruppe)) form one weighting class, so the
    figure tells no more than the members' published cells (docs/analytics-method.md)."""
    members = set(kommuner)
    pooled = {h for h, info in data.strata.items() if info.kommunekode in members and (info.kommunekode, info.maalgruppe) in hidden}
    design = data.design
    if pooled:
        population = [data.strata[h].population for h in pooled]
        pool = StratumInfo("", "", sum(data.strata[h].respondents for h in pooled),
                           None if None in population else sum(population))
        design = {**data.design, _POOL: design_strata({_POOL: pool})[_POOL]}
    by_stratum: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for c in data.cells.get(question, []):
        if c.kommunekode in members:
            by_stratum[_POOL if c.stratum in pooled else c.stratum][c.code] += c.n
    est = cell_estimates(by_stratum, design, data.degf)
    if est.n_valid < min_count or not members:
        return GroupCell(None, None, None, est.n_valid, True, "primary", False)
    if member_suppressed:
        return GroupCell(None, None, None, est.n_valid, True, "secondary", False)
    mean, top2 = est.weighted["mean"], est.weighted["top2_share"]
    return GroupCell(mean.value, mean.se, top2.value, est.n_valid, False, None, est.n_valid < caution_below)


# -- the adjusted score ----------------------------------------------------------------------------------


@dataclass
class Adjustment:
    question: str
    national: float  # M of the fit's own data (the page shows the published national figure)
    columns: list[tuple[str, str]]  # (variable, level) of each coefficient after the intercept
    reference: dict[str, str]  # variable -> reference level
    coefficients: np.ndarray  # intercept first

    def expected(self, mix: Mapping[str, Mapping[str, float]]) -> float:
        """E_k: what the model predicts for a population of composition ``mix`` (variable ->
        level -> share): the intercept plus each level's share times its effect (main effects,
        so the mean prediction is the prediction at the mean composition)."""
        return float(self.coefficients[0]) + math.fsum(
            mix.get(dim, {}).get(lvl, 0.0) * float(b) for (dim, lvl), b in zip(self.columns, self.coefficients[1:])
        )


def fit(rows: list[tuple[tuple[str, ...], float, float]]) -> tuple[np.ndarray, list[tuple[str, str]], dict[str, str], np.ndarray]:
    """Weighted least squares of y on the four variables (main effects, treatment coding).

    ``rows``: (bands, y, weight) per group of identical respondents (weight = w_h * count).
    Returns coefficients (intercept first), the dummy columns, the reference levels and the
    fitted values per row. numpy's lstsq on sqrt(w)-scaled rows; a level that is collinear
    with others gets the minimum-norm solution, which leaves the fitted values unique."""
    levels = [sorted({r[0][i] for r in rows}, key=natural_key) for i in range(len(DIMENSIONS))]
    reference = {dim: lv[0] for dim, lv in zip(DIMENSIONS, levels)}
    columns = [(dim, lvl) for dim, lv in zip(DIMENSIONS, levels) for lvl in lv[1:]]
    position = {col: 1 + i for i, col in enumerate(columns)}
    x = np.zeros((len(rows), 1 + len(columns)))
    x[:, 0] = 1.0
    for i, (bands, _, _) in enumerate(rows):
        for dim, lvl in zip(DIMENSIONS, bands):
            if (dim, lvl) in position:
                x[i, position[(dim, lvl)]] = 1.0
    y = np.array([r[1] for r in rows])
    root = np.sqrt(np.array([r[2] for r in rows]))
    beta, *_ = np.linalg.lstsq(x * root[:, None], y * root, rcond=None)
    return beta, columns, reference, x @ beta


def adjustment(data: RoundData, question: str) -> Adjustment | None:
    found = data._adjustments.get(question)
    if found is not None or question in data._adjustments:
        return found
    cells = [c for c in data.cells.get(question, []) if c.code in SCORES]
    if not cells:
        data._adjustments[question] = None
        return None
    rows = [(c.bands, float(c.code), data.design[c.stratum].weight * c.n) for c in cells]
    beta, columns, reference, fitted = fit(rows)
    weights = np.array([r[2] for r in rows])
    ys = np.array([r[1] for r in rows])
    national = float(np.sum(weights * ys) / np.sum(weights))
    out = Adjustment(question, national, columns, reference, beta)
    data._adjustments[question] = out
    return out
