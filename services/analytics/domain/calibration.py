"""Calibrated weights beside the design weights: raking within each municipality to the frame.

Why
---
The design weight ``w0_h = N_h / r_h`` (population over respondents of stratum h = municipality
x target group) corrects for who was sampled and, within a stratum, treats whoever answered as a
random pick of the stratum. When young men answer less than older women, the stratum's figure
leans to older women. The frame knows the population by gender, age band and duration band
(``frame.margins``), so the weights can be adjusted until the respondents reproduce those
margins: calibration (Deville and Särndal 1992), here by raking.

What
----
Within each municipality, the design weights are raked to the margins of a
:class:`CalibrationSpec` (default: target group x gender, target group x age band, duration
band; configurable per round). A unit's calibrated weight is ``w_i = g_i w0_i`` with

    g_i = clip(exp(x_i' eta), lower, upper)

where ``x_i`` holds the unit's categories (one 0/1 column per category of every margin) and
``eta`` solves the calibration equations ``sum_i w0_i g_i x_i = T`` (T the population counts per
category). This is R's ``calibrate(design, formula, population, calfun = "raking", bounds =
c(lower, upper))``: the same Newton iteration (its ``grake``, a generalised inverse for the
redundant categories), and since the solution's weights are unique, the same weights. All units
of one stratum x bands cell share their weight, so everything here works on cells (respondents
per stratum x gender x age band x duration band, and answers per cell and answer code), not on
units; the figures are those of the unit-level design.

Municipalities are raked one by one (every margin is within municipality, so the national
problem splits into them). A municipality is left at its design weights (g = 1), and the
problem reported (:class:`CalibrationProblem`), when

* its population was not counted (no frame.margins for it): ``no_population``,
* a category has population but no respondent (raking cannot reach its total): ``empty_category``,
* respondents fall in a category the frame does not have: ``unknown_category``,
* the iteration does not converge within the bounds: ``not_converged``.

Strata without respondents are outside both the design and the calibration (their population is
left out of the margins, as the design weights leave it out).

Variance
--------
Linearisation with the calibration residuals, as R's ``svymean`` on a calibrated design: the
linearised value of a ratio over a domain D, ``v_i = d_i (y_i - ybar) / sum_j w_j d_j``, is
replaced by ``e_i = w_i (v_i - x_i' B)``, B the regression of v on x weighted by the *design*
weights ``w0`` (R: ``qr.resid(qr(X sqrt(w0)), ...)``); ``e`` goes into the stratified
without-replacement formula (fpc ``1 - r_h / N_h``, as the design-weighted figures). Units
outside the domain have ``v = 0`` but a residual ``-w_i x_i' B``: every unit of a calibrated
municipality counts. Per cell the fit ``f_c = x_c' B`` is a projection of the cells' sums of v
(:attr:`Calibration.groups`).

Lonely strata (one respondent) follow the rule of :data:`LONELY_RULES`, as R's
``options(survey.lonely.psu = ...)``: "adjust" (the unit's value centred at 0, not at its
stratum's mean), "certainty" (it contributes nothing), "average" (the variance is scaled up by
strata / strata that are not lonely). Fully enumerated strata (``1 - f_h < 1e-7``) contribute
nothing under every rule.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from services.analytics.domain.estimators import normal_quantile
from services.analytics.domain.indicators import PUBLISHED_INDICATORS, CountedIndicator

VARIABLES: tuple[str, ...] = ("maalgruppe", "gender", "age_band", "duration_band")
DEFAULT_MARGINS: tuple[tuple[str, ...], ...] = (("maalgruppe", "gender"), ("maalgruppe", "age_band"), ("duration_band",))
DEFAULT_BOUNDS: tuple[float, float] = (0.2, 5.0)
LONELY_RULES: tuple[str, ...] = ("adjust", "certainty", "average")
LonelyRule = Literal["adjust", "certainty", "average"]
# The indicators published calibrated (their definitions: indicators.PUBLISHED_INDICATORS).
CALIBRATED_INDICATORS: dict[str, CountedIndicator] = {
    name: PUBLISHED_INDICATORS[name] for name in ("mean", "top2_share")
}
CALIBRATED_SUFFIXES: tuple[str, ...] = ("_calibrated", "_calibrated_se", "_calibrated_ci_low", "_calibrated_ci_high")
CALIBRATED_COLUMNS: tuple[str, ...] = tuple(f"{ind}{s}" for ind in CALIBRATED_INDICATORS for s in CALIBRATED_SUFFIXES)

_CENSUS_EPSILON = 1e-7  # as the design estimator (and R): 1 - f_h below this is a census
_MAX_ITERATIONS = 50  # R calibrate's default maxit
_TOLERANCE = 1e-12  # R's convergence test: |misfit| / (1 + |total|) below this for every category


class CalibrationSpecError(ValueError):
    """A calibration specification that cannot be used (unknown variable, bad bounds)."""


@dataclass(frozen=True)
class CalibrationSpec:
    """Which margins to rake to and the bounds on g = calibrated weight / design weight."""

    margins: tuple[tuple[str, ...], ...] = DEFAULT_MARGINS
    lower: float = DEFAULT_BOUNDS[0]  # -inf: no lower bound (R's default)
    upper: float = DEFAULT_BOUNDS[1]  # inf: no upper bound

    def __post_init__(self) -> None:
        if not self.margins:
            raise CalibrationSpecError("at least one margin is needed")
        for margin in self.margins:
            if not margin or len(set(margin)) != len(margin):
                raise CalibrationSpecError(f"a margin is one or more distinct variables, got {list(margin)}")
            unknown = [v for v in margin if v not in VARIABLES]
            if unknown:
                raise CalibrationSpecError(f"unknown variables {unknown} in a margin; known: {list(VARIABLES)}")
        if not ((0.0 <= self.lower or self.lower == -math.inf) and self.lower < 1.0 < self.upper):
            raise CalibrationSpecError(
                f"bounds must satisfy 0 <= lower < 1 < upper (null: no bound), got ({self.lower}, {self.upper})"
            )

    def to_json(self) -> dict:
        return {
            "margins": [list(m) for m in self.margins],
            "bounds": [None if math.isinf(self.lower) else self.lower, None if math.isinf(self.upper) else self.upper],
        }

    @classmethod
    def from_json(cls, data: Mapping | None) -> CalibrationSpec:
        if not data:
            return cls()
        lower, upper = data.get("bounds", DEFAULT_BOUNDS)
        return cls(
            tuple(tuple(m) for m in data.get("margins", DEFAULT_MARGINS)),
            -math.inf if lower is None else float(lower),
            math.inf if upper is None else float(upper),
        )


@dataclass(frozen=True, slots=True)
class RespondentCell:
    """Respondents of one stratum with one combination of bands."""

    stratum: str
    kommunekode: str
    maalgruppe: str
    gender: str
    age_band: str
    duration_band: str
    respondents: int

    def value(self, variable: str) -> str:
        return getattr(self, variable)


# (kommunekode, maalgruppe, gender, age_band, duration_band, citizens): frame.margins' cells.
PopulationCount = tuple[str, str, str, str, str, int]


@dataclass(frozen=True, slots=True)
class CalibrationProblem:
    kommunekode: str
    reason: Literal["no_population", "empty_category", "unknown_category", "not_converged"]
    detail: str

    def to_json(self) -> dict:
        return {"kommunekode": self.kommunekode, "reason": self.reason, "detail": self.detail}


@dataclass
class Calibration:
    """The calibrated design on cells: per cell its stratum, respondents, design weight and g;
    per calibrated municipality the projection that gives the residual fit; the problems."""

    spec: CalibrationSpec
    cells: list[RespondentCell]
    strata: list[str]
    stratum_of: np.ndarray  # per cell: index into strata
    n: np.ndarray  # per stratum: respondents
    fpc: np.ndarray  # per stratum: 1 - n/N (1 without N)
    respondents: np.ndarray  # per cell
    base_weight: np.ndarray  # per cell: w0 = N_h / n_h
    g: np.ndarray  # per cell: calibrated / design weight (1 where not calibrated)
    # Per municipality: (its cells, H) with f = H @ V for V the cells' sums of v; H None where
    # the municipality was not raked (no residual fit: its design weights' linearisation).
    groups: list[tuple[np.ndarray, np.ndarray | None]] = field(default_factory=list)
    calibrated: list[str] = field(default_factory=list)  # municipalities raked
    problems: list[CalibrationProblem] = field(default_factory=list)

    @property
    def weight(self) -> np.ndarray:
        return self.base_weight * self.g

    def report(self) -> dict:
        """What the publication says about the calibration (JSON)."""
        return {
            **self.spec.to_json(),
            "calibrated": list(self.calibrated),
            "problems": [p.to_json() for p in self.problems],
            "g_min": float(self.g.min()) if len(self.g) else None,
            "g_max": float(self.g.max()) if len(self.g) else None,
        }


def calibrate(
    cells: Sequence[RespondentCell],
    population_sizes: Mapping[str, int | None],
    population: Sequence[PopulationCount],
    spec: CalibrationSpec = CalibrationSpec(),
) -> Calibration:
    """Rake the design weights ``N_h / n_h`` (``population_sizes``: stratum -> N_h, None where
    unknown: weight 1, no fpc) to ``population`` within each municipality."""
    cells = [c for c in cells if c.respondents > 0]
    strata = sorted({c.stratum for c in cells})
    index = {h: i for i, h in enumerate(strata)}
    stratum_of = np.array([index[c.stratum] for c in cells], dtype=np.intp)
    respondents = np.array([c.respondents for c in cells], dtype=float)
    n = np.bincount(stratum_of, weights=respondents, minlength=len(strata))
    big_n = np.array([np.nan if population_sizes.get(h) is None else max(float(population_sizes[h]), n[i]) for i, h in enumerate(strata)])
    known = ~np.isnan(big_n)
    stratum_weight = np.where(known, np.divide(big_n, n, where=known, out=np.ones_like(n)), 1.0)
    fpc = np.where(known, 1.0 - np.divide(n, big_n, where=known, out=np.zeros_like(n)), 1.0)
    out = Calibration(
        spec, cells, strata, stratum_of, n, fpc, respondents, stratum_weight[stratum_of], np.ones(len(cells))
    )
    by_kommune: dict[str, list[int]] = defaultdict(list)
    for i, c in enumerate(cells):
        by_kommune[c.kommunekode].append(i)
    counted: dict[str, list[PopulationCount]] = defaultdict(list)
    for row in population:
        if row[5] > 0:
            counted[row[0]].append(row)
    for kommune in sorted(by_kommune):
        ix = np.array(by_kommune[kommune], dtype=np.intp)
        problem = _rake_municipality(out, kommune, ix, counted.get(kommune, []))
        if problem is None:
            out.calibrated.append(kommune)
        else:
            out.problems.append(problem)
            out.groups.append((ix, None))
    return out


def _rake_municipality(out: Calibration, kommune: str, ix: np.ndarray, population: list[PopulationCount]) -> CalibrationProblem | None:
    if not population:
        return CalibrationProblem(kommune, "no_population", "no population counts (frame.margins) for the municipality")
    spec = out.spec
    groups = {out.cells[i].maalgruppe for i in ix}
    columns: dict[tuple, int] = {}
    totals: dict[tuple, float] = defaultdict(float)
    for k, g, gender, age, duration, count in population:
        if g not in groups:
            continue  # a stratum without respondents: outside the design and the calibration
        values = {"maalgruppe": g, "gender": gender, "age_band": age, "duration_band": duration}
        for m, margin in enumerate(spec.margins):
            totals[(m, *(values[v] for v in margin))] += count
    rows = []
    for i in ix:
        c = out.cells[i]
        rows.append([(m, *(c.value(v) for v in margin)) for m, margin in enumerate(spec.margins)])
    sampled = {cat for row in rows for cat in row}
    unknown = sorted(sampled - set(totals))
    if unknown:
        return CalibrationProblem(kommune, "unknown_category", f"respondents in categories the frame does not have: {_names(spec, unknown)}")
    empty = sorted(cat for cat in totals if cat not in sampled)
    if empty:
        return CalibrationProblem(kommune, "empty_category", f"categories with population but no respondent: {_names(spec, empty)}")
    for cat in sorted(totals):
        columns[cat] = len(columns)
    x = np.zeros((len(ix), len(columns)))
    for r, row in enumerate(rows):
        for cat in row:
            x[r, columns[cat]] = 1.0
    target = np.array([totals[cat] for cat in columns])
    w0 = out.base_weight[ix] * out.respondents[ix]  # each cell's units together
    g = _grake(x, w0, target, spec.lower, spec.upper)
    if g is None:
        return CalibrationProblem(
            kommune, "not_converged", f"raking did not converge within the bounds ({spec.lower}, {spec.upper}) in {_MAX_ITERATIONS} iterations"
        )
    out.g[ix] = g
    # The residual fit per cell: f = X (X' W0 X)^+ X' W0 v over units, i.e. with V_c the sum of v
    # over cell c's units, f = H V for H = X (X' diag(r w0) X)^+ X' diag(w0).
    moment = x.T @ (w0[:, None] * x)
    h = x @ np.linalg.pinv(moment, rcond=1e-11, hermitian=True) @ x.T * out.base_weight[ix][None, :]
    out.groups.append((ix, h))
    return None


def _names(spec: CalibrationSpec, categories: list[tuple]) -> str:
    return "; ".join(" x ".join(f"{v}={lvl}" for v, lvl in zip(spec.margins[cat[0]], cat[1:])) for cat in categories)


def _grake(x: np.ndarray, w0: np.ndarray, target: np.ndarray, lower: float, upper: float) -> np.ndarray | None:
    """R survey's grake for calfun = "raking" with bounds: Newton steps on eta with a generalised
    inverse (MASS::ginv's tolerance; the categories of several margins are collinear), g =
    clip(exp(x' eta), lower, upper), step halving while g is not finite, until every category's
    misfit is below _TOLERANCE relative to 1 + its total. None when it does not converge."""
    eta = np.zeros(x.shape[1])

    def at(eta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        u = x @ eta
        with np.errstate(over="ignore"):
            e = np.exp(u)
        g = np.clip(e, lower, upper)
        # R's cal.raking derivative, window and all: exp(u) for lower - 1 < u < upper - 1 (not
        # where g is unclipped). The iteration is R's step for step, so it converges (or not)
        # where R's does; its solution solves the same equations either way.
        return g, np.where((u > lower - 1.0) & (u < upper - 1.0), e, 0.0)

    g, deriv = at(eta)
    for _ in range(_MAX_ITERATIONS):
        misfit = target - x.T @ (w0 * g)
        if np.all(np.abs(misfit) / (1.0 + np.abs(target)) < _TOLERANCE):
            return g
        t = x.T @ ((w0 * deriv)[:, None] * x)
        step = np.linalg.pinv(t, rcond=256 * np.finfo(float).eps, hermitian=True) @ misfit
        eta = eta + step
        g, deriv = at(eta)
        halvings = 0
        while (not np.all(np.isfinite(g)) or not np.all(np.isfinite(deriv))) and halvings < 50:
            step = step / 2
            eta = eta - step
            g, deriv = at(eta)
            halvings += 1
    misfit = target - x.T @ (w0 * g)
    return g if np.all(np.abs(misfit) / (1.0 + np.abs(target)) < _TOLERANCE) else None


@dataclass(frozen=True)
class Figures:
    """Estimates per domain of one indicator: value, se, ci (NaN where the base is empty)."""

    value: np.ndarray
    se: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray


def estimate(
    cal: Calibration,
    counts: np.ndarray,
    domains: np.ndarray,
    indicator: str,
    *,
    lonely: LonelyRule = "adjust",
    calibrated: bool = True,
    level: float = 0.95,
) -> Figures:
    """The indicator over each domain with the calibrated weights (``calibrated`` False: the
    design weights, no residual fit: the design-weighted figures).

    ``counts``: (cells, codes) answers per cell and answer code (CODES order) of one question;
    ``domains``: (cells, D) booleans, the cells in each domain (a domain is a union of cells,
    e.g. of whole strata)."""
    if lonely not in LONELY_RULES:
        raise ValueError(f"lonely must be one of {LONELY_RULES}, got {lonely!r}")
    definition = CALIBRATED_INDICATORS[indicator]
    value, base = np.array(definition.values, dtype=float), np.array(definition.in_base, dtype=float)
    d = domains.astype(float)
    n_domains = d.shape[1]
    w = cal.weight if calibrated else cal.base_weight
    inside = (counts * base[None, :]).sum(axis=1)  # per cell: units in the indicator's base
    valued = (counts * (base * value)[None, :]).sum(axis=1)
    total_w = (w * inside) @ d
    n_total = inside @ d
    with np.errstate(invalid="ignore", divide="ignore"):
        ybar = ((w * valued) @ d) / total_w
    variance = np.zeros(n_domains)
    present = np.zeros(n_domains)  # strata with a unit in the domain's base (R's design of the domain)
    alone = np.zeros(n_domains)  # ... of them lonely (one respondent, not a census)
    census_h = cal.fpc < _CENSUS_EPSILON
    lonely_h = (cal.n == 1) & ~census_h
    # Municipality by municipality, over the domains that have a cell in it: a domain's residuals
    # are zero in every municipality it does not touch (its v is zero there, and so is the fit).
    for ix, h in cal.groups:
        cols = np.flatnonzero(domains[ix].any(axis=0))
        if not len(cols):
            continue
        dd = d[np.ix_(ix, cols)]
        yb, tw = ybar[cols], total_w[cols]
        counted = counts[ix] * base[None, :]
        with np.errstate(invalid="ignore", divide="ignore"):
            # V: per cell and domain the sum of v = (y - ybar) / W over the cell's units in the
            # domain; Q: the sum of v^2.
            big_v = (valued[ix][:, None] - inside[ix][:, None] * yb[None, :]) * dd / tw[None, :]
            dev = value[None, :, None] - yb[None, None, :]
            q = (counted[:, :, None] * dev * dev).sum(axis=1) * dd / (tw[None, :] ** 2)
        big_v = np.nan_to_num(big_v)
        q = np.nan_to_num(q)
        fit = h @ big_v if calibrated and h is not None else np.zeros_like(big_v)
        r = cal.respondents[ix][:, None]
        wc = w[ix][:, None]
        # Per cell, the residuals' sum and sum of squares: units in the domain's base have
        # e = w (v - f), every other unit of the cell e = -w f.
        s1_cell = wc * (big_v - fit * r)
        s2_cell = wc * wc * (q - 2.0 * fit * big_v + r * fit * fit)
        local, position = np.unique(cal.stratum_of[ix], return_inverse=True)
        s1 = np.zeros((len(local), len(cols)))
        s2 = np.zeros((len(local), len(cols)))
        np.add.at(s1, position, s1_cell)
        np.add.at(s2, position, s2_cell)
        n = cal.n[local][:, None]
        fpc = cal.fpc[local][:, None]
        census = census_h[local][:, None]
        alone_here = lonely_h[local][:, None]
        safe_n = np.where(n == 1, 2.0, n)
        part = fpc * safe_n / (safe_n - 1) * np.maximum(s2 - s1 * s1 / safe_n, 0.0)
        if lonely == "adjust":
            part = np.where(alone_here, fpc * s2, part)
        else:  # certainty: the lonely unit centred at itself, nothing; average: left out, then scaled
            part = np.where(alone_here, 0.0, part)
        variance[cols] += np.where(census, 0.0, part).sum(axis=0)
        if not calibrated:
            # Without calibration a stratum with no unit in the domain is not in the domain's
            # design (R drops those rows): it counts for "average" only where it has one.
            has = np.zeros((len(local), len(cols)), dtype=bool)
            np.logical_or.at(has, position, (inside[ix][:, None] * dd) > 0)
            present[cols] += has.sum(axis=0)
            alone[cols] += (has & alone_here).sum(axis=0)
    if lonely == "average":
        if calibrated:  # every unit stays in a calibrated design: all its strata count
            present[:] = len(cal.strata)
            alone[:] = lonely_h.sum()
        with np.errstate(invalid="ignore", divide="ignore"):
            variance = np.where(present > alone, variance * present / (present - alone), np.nan)
    se = np.sqrt(variance)
    z = normal_quantile(level)
    empty = n_total == 0
    ybar = np.where(empty, np.nan, ybar)
    se = np.where(empty, np.nan, se)
    return Figures(ybar, se, ybar - z * se, ybar + z * se)


def union_figures(
    cal: Calibration,
    counts: Mapping[str, np.ndarray],
    *,
    lonely: LonelyRule = "adjust",
    national: str = "national",
    all_levels: str = "total",
) -> dict[tuple[str, str, str], tuple[float, ...]]:
    """The calibrated figures of the cells that are unions of whole strata, per question: the
    national total and each target group nationally, each municipality's total and each of its
    strata. ``counts``: question -> (cells, codes) answers. Keys (question, kommunekode or
    ``national``, target group or ``all_levels``); values in CALIBRATED_COLUMNS order."""
    if not cal.cells:
        return {}
    names: list[tuple[str, str]] = [(national, all_levels)]
    columns = [np.ones(len(cal.cells), dtype=bool)]
    kommune = np.array([c.kommunekode for c in cal.cells])
    group = np.array([c.maalgruppe for c in cal.cells])
    for g in sorted(set(group.tolist())):
        names.append((national, g))
        columns.append(group == g)
    for k in sorted(set(kommune.tolist())):
        names.append((k, all_levels))
        columns.append(kommune == k)
        for g in sorted(set(group[kommune == k].tolist())):
            names.append((k, g))
            columns.append((kommune == k) & (group == g))
    mask = np.stack(columns, axis=1)
    out: dict[tuple[str, str, str], tuple[float, ...]] = {}
    for question, per_cell in counts.items():
        parts = []
        for indicator in CALIBRATED_INDICATORS:
            f = estimate(cal, per_cell, mask, indicator, lonely=lonely)
            parts.extend([f.value, f.se, f.ci_low, f.ci_high])
        table = np.stack(parts, axis=1)
        for j, (k, level) in enumerate(names):
            out[(question, k, level)] = tuple(table[j].tolist())
    return out
