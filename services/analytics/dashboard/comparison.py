"""Comparable municipalities and the composition-adjusted score (fair comparison).

Both are computed from the same tallies and design weights the publication uses
(``answer_tally`` cross-classified by stratum x gender x age band x duration band x question x
answer code; ``w_h = N_h / n_h`` from :func:`design_strata`), so a figure here for one
municipality equals the published one (tested).

Comparable municipalities (:func:`comparable`)
    The definition is data (``comparable_municipalities.json``, or ``DASHBOARD_COMPARABLE_FILE``):
    either fixed groups (e.g. STAR's clusters, when sourced) or, by default, the ``neighbours``
    nearest municipalities by the composition of their survey population. A municipality's
    composition is its share of citizens per level of target group, gender, age band and
    duration band. The target-group mix is the frame itself: sum_i w_h over a stratum's
    respondents is n_h * N_h / n_h = N_h from ``sample.drawn``. The other three mixes are the
    frame's as estimated with the design weights from the respondents (``sample.drawn``'s
    strata summary carries only target-group margins). Distance = weighted mean over the
    variables of the dissimilarity index D = 1/2 sum_l |p_kl - p_jl|.

The comparison group's figure (:func:`group_cell`)
    The ratio estimator over the union of the members' strata (as a published cell, with
    Taylor SE and FPC). Suppression as the publication: primary when fewer than ``min_count``
    scale answers; secondary when a member's published total of the question is suppressed
    (the group figure minus the published members would recover it).

Adjusted score (:func:`adjustment`): indirect standardisation by weighted regression
    A national weighted least-squares model of the answer (1..5) on target group, gender,
    age band and duration band jointly (main effects, treatment coding; weight w_h per answer),
    fitted with numpy's least squares. For every respondent the model gives the expected answer
    given only composition. For municipality k: observed O_k (its weighted mean, the published
    raw score), expected E_k (weighted mean of the predictions over its respondents), and

        adjusted_k = M + (O_k - E_k),  M = national weighted mean,

    i.e. the national level plus what the municipality achieves beyond what its respondents'
    composition predicts. SE: the Taylor-linearised SE (stratified, FPC, as every estimate) of
    the weighted mean of the residuals y - yhat over the municipality; the national fit and M
    are treated as fixed (they rest on all respondents). Shown only when the municipality's
    published total cell is (same count rule).
"""

from __future__ import annotations

import asyncio
import json
import math
import os
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import sqlalchemy as sa

from services.analytics.domain.answers import SCORES, answer_code
from services.analytics.domain.estimators import normal_quantile
from services.analytics.domain.publication import (
    DIMENSIONS,
    StratumInfo,
    cell_estimates,
    design_strata,
    estimate_from_counts,
    natural_key,
)
from services.analytics.models import ResponseFact, StratumFrame
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
    persons: dict[tuple[str, tuple[str, str, str]], int] = field(default_factory=dict)  # (stratum, bands) -> respondents
    _adjustments: dict = field(default_factory=dict)


def _count_facts(facts) -> tuple[Counter, Counter, Counter]:
    """Respondents per stratum, per (stratum, bands), and answers per cross-classified cell and
    code, counted from answer facts as the handlers count them into the tallies."""
    answered: Counter = Counter()
    persons: Counter = Counter()
    tallies: Counter = Counter()
    for h, k, g, gender, age, duration, answers in facts:
        answered[(h, k, g)] += 1
        persons[(h, (gender, age, duration))] += 1
        for question, value in answers.items():
            code = answer_code(value)
            if code is not None:
                tallies[(h, k, g, gender, age, duration, question, code)] += 1
    return answered, persons, tallies


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
    answered, persons, counted = await asyncio.to_thread(_count_facts, facts)
    rates = [(h, k, g, n) for (h, k, g), n in answered.items()]
    tallies = [(*key, n) for key, n in counted.items()]
    persons = dict(persons)
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
    return RoundData(round_id, version, strata, design_strata(strata), n_total, degf, dict(cells), kommuner, persons)


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


def composition(data: RoundData) -> dict[str, dict[str, dict[str, float]]]:
    """kommune -> variable -> level -> share of the survey population (respondents counted once
    each from ``response_fact``, weighted by w_h: for the target group this is N_h exactly)."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    totals: dict[str, dict[str, dict[str, float]]] = defaultdict(lambda: defaultdict(lambda: defaultdict(float)))
    for (h, bands), n in data.persons.items():
        info = data.strata.get(h)
        if info is None:
            continue
        w = data.design[h].weight * n
        for dim, level in zip(DIMENSIONS, (info.maalgruppe, *bands)):
            totals[info.kommunekode][dim][level] += w
    # The target-group mix straight from the frame (N_h of sample.drawn), strata without respondents included.
    frame: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for info in data.strata.values():
        if info.population:
            frame[info.kommunekode][info.maalgruppe] += info.population
    for k, mix in frame.items():
        if k in totals:
            totals[k]["maalgruppe"] = mix
    for k, dims in totals.items():
        out[k] = {dim: {lvl: v / math.fsum(levels.values()) for lvl, v in levels.items()} for dim, levels in dims.items()}
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


def group_cell(data: RoundData, question: str, kommuner: list[str], member_suppressed: bool, min_count: int,
               caution_below: int) -> GroupCell:
    members = set(kommuner)
    by_stratum: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for c in data.cells.get(question, []):
        if c.kommunekode in members:
            by_stratum[c.stratum][c.code] += c.n
    est = cell_estimates(by_stratum, data.design, data.degf)
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
    national: float  # M
    columns: list[tuple[str, str]]  # (variable, level) of each coefficient after the intercept
    reference: dict[str, str]  # variable -> reference level
    coefficients: np.ndarray  # intercept first
    observed: dict[str, float] = field(default_factory=dict)  # kommune -> O_k
    expected: dict[str, float] = field(default_factory=dict)  # kommune -> E_k
    adjusted: dict[str, float] = field(default_factory=dict)  # kommune -> M + O_k - E_k
    se: dict[str, float] = field(default_factory=dict)


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
    residuals: dict[str, dict[str, dict[float, int]]] = defaultdict(lambda: defaultdict(lambda: defaultdict(int)))
    sums: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0])  # sum w, sum w y, sum w yhat
    for c, (_, y, w), yhat in zip(cells, rows, fitted):
        residuals[c.kommunekode][c.stratum][y - float(yhat)] += c.n
        s = sums[c.kommunekode]
        s[0] += w
        s[1] += w * y
        s[2] += w * float(yhat)
    for k, (sw, swy, swf) in sums.items():
        est = estimate_from_counts(residuals[k], data.design, data.degf)
        out.observed[k] = swy / sw
        out.expected[k] = swf / sw
        out.adjusted[k] = national + est.value
        out.se[k] = est.se
    data._adjustments[question] = out
    return out
