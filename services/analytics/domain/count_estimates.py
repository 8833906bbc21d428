"""Indicators estimated from aggregated answer counts (no I/O): one cell (:func:`cell_estimates`)
or every published cell of a round at once, with numpy (:func:`estimate_cells`); the indicators'
definitions are :data:`.indicators.PUBLISHED_INDICATORS`.

Every indicator is a ratio estimator of a 0/1 or 1..5 variable over a domain (a cell), and the
design weight is constant within a stratum (``w_h = N_h / n_h``, respondents' n_h, see
:mod:`.estimators`). The Taylor-linearised variance of :class:`~.estimators.StratifiedDesign`
then depends on a stratum's units only through how many of them sit in the domain with each
answer: with ``z_hi = w_h (y_hi - ybar) / W`` for units in the domain and 0 elsewhere,

    sum_i z_hi   = w_h / W   * sum_c m_hc (y_c - ybar)
    sum_i z_hi^2 = (w_h/W)^2 * sum_c m_hc (y_c - ybar)^2
    V = sum_h (1 - f_h) n_h / (n_h - 1) * (sum z^2 - (sum z)^2 / n_h)

where ``m_hc`` counts the domain's units of stratum h answering category c. So analytics keeps
an incremental tally (round x stratum x bands x question x answer code) and never needs the
response rows to publish; :func:`estimate_from_counts` reproduces ``StratifiedDesign.mean`` (and
the unweighted design) to rounding, which the tests check against the domain and R.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Hashable, Mapping
from dataclasses import dataclass

import numpy as np

from .answers import CODES, DONT_KNOW, SCORES
from .estimators import Estimate, design_effect, normal_quantile, proportion_interval, ratio_estimate
from .indicators import INDICATORS, PUBLISHED_INDICATORS

_CENSUS_EPSILON = 1e-7  # as the domain estimator (and R): 1 - f_h below this is a census
# The indicators that are proportions (0/1 per unit): their interval is the logit interval.
PROPORTIONS: frozenset[str] = frozenset(name for name, d in PUBLISHED_INDICATORS.items() if d.proportion)
# Beside each weighted estimate: its base's weighted population size, design effect and
# effective sample size (weighted figures: withheld where a row's weighted figures are).
ESTIMATE_SUFFIXES: tuple[str, ...] = (
    "", "_se", "_ci_low", "_ci_high", "_population", "_deff", "_n_effective", "_unweighted", "_unweighted_se"
)
WEIGHTED_SUFFIXES: tuple[str, ...] = ("", "_se", "_ci_low", "_ci_high", "_population", "_deff", "_n_effective")


@dataclass(frozen=True, slots=True)
class StratumInfo:
    kommunekode: str
    maalgruppe: str
    respondents: int  # n_h: respondents of the round in the stratum
    population: int | None  # N_h from sample.drawn; None until the frame has arrived


@dataclass(frozen=True, slots=True)
class _Stratum:
    n: int  # units of the stratum in the analysis file
    weight: float
    fpc: float  # 1 - n/N, or 1 without a population size


def estimate_from_counts(
    values: Mapping[Hashable, Mapping[float, int]],
    strata: Mapping[Hashable, _Stratum],
    degrees_of_freedom: int,
    level: float = 0.95,
    *,
    proportion: bool = False,
) -> Estimate | None:
    """The ratio estimator of :meth:`StratifiedDesign.mean` from per-stratum value counts.

    ``values[h][y]`` is how many units of stratum h are in the domain with value y. None when
    the domain has no unit with a value. ``proportion``: the values are 0/1, the interval the
    logit interval.
    """
    total_w = math.fsum(strata[h].weight * m for h, vc in values.items() for m in vc.values())
    n_inside = sum(m for vc in values.values() for m in vc.values())
    if n_inside == 0:
        return None
    estimate = math.fsum(strata[h].weight * y * m for h, vc in values.items() for y, m in vc.items()) / total_w
    parts = []
    for h, vc in values.items():
        s = strata[h]
        if s.fpc < _CENSUS_EPSILON or not any(vc.values()):
            continue  # census stratum, or no unit in the domain: every z is 0
        scale = s.weight / total_w
        sum_z = scale * math.fsum(m * (y - estimate) for y, m in vc.items())
        sum_z2 = scale * scale * math.fsum(m * (y - estimate) ** 2 for y, m in vc.items())
        if s.n == 1:
            parts.append(s.fpc * sum_z2)  # lonely stratum, "adjust": centred at 0
        else:
            parts.append(s.fpc * s.n / (s.n - 1) * max(sum_z2 - sum_z * sum_z / s.n, 0.0))
    variance = math.fsum(parts)
    element_ss = math.fsum(strata[h].weight * m * (y - estimate) ** 2 for h, vc in values.items() for y, m in vc.items())
    return ratio_estimate(estimate, variance, element_ss, n_inside, total_w, degrees_of_freedom, level, proportion=proportion)


def design_strata(strata: Mapping[str, StratumInfo]) -> dict[str, _Stratum]:
    """Weights N_h / n_h and the fpc; without a frame (N_h unknown) weight 1 and no fpc."""
    out = {}
    for h, info in strata.items():
        n = max(info.respondents, 1)
        if info.population is None:
            out[h] = _Stratum(n, 1.0, 1.0)
        else:
            big_n = max(info.population, n)  # a frame smaller than the answers is a data error
            out[h] = _Stratum(n, big_n / n, 1.0 - n / big_n)
    return out


@dataclass(frozen=True, slots=True)
class CellEstimates:
    n_answers: int
    n_valid: int
    n_dont_know: int
    weighted: dict[str, Estimate | None]
    unweighted: dict[str, Estimate | None]


def _indicator_values(codes: Mapping[str, int]) -> dict[str, dict[float, int]]:
    """Per indicator: value -> count of one stratum's units in the domain with that value."""
    return {name: definition.value_counts(codes) for name, definition in PUBLISHED_INDICATORS.items()}


def cell_estimates(
    by_stratum: Mapping[str, Mapping[str, int]],
    design: Mapping[str, _Stratum],
    degrees_of_freedom: int,
) -> CellEstimates:
    """Weighted and unweighted indicators of one cell from its strata's answer-code counts."""
    per_indicator: dict[str, dict[str, dict[float, int]]] = defaultdict(dict)
    merged: dict[str, int] = defaultdict(int)
    for h, codes in by_stratum.items():
        for ind, vc in _indicator_values(codes).items():
            per_indicator[ind][h] = vc
        for c, n in codes.items():
            merged[c] += n
    # The unweighted figure: the indicator's base in the cell as a simple random sample, no fpc
    # (R: svydesign(ids=~1) on those units), so SE = s / sqrt(n) of the cell alone.
    plain_values = _indicator_values(merged)
    weighted = {
        ind: estimate_from_counts(per_indicator.get(ind, {}), design, degrees_of_freedom, proportion=ind in PROPORTIONS)
        for ind in INDICATORS
    }
    unweighted = {}
    for ind in INDICATORS:
        base = sum(plain_values[ind].values())
        unweighted[ind] = estimate_from_counts(
            {None: plain_values[ind]}, {None: _Stratum(max(base, 1), 1.0, 1.0)}, base - 1, proportion=ind in PROPORTIONS
        )
    valid = sum(merged.get(s, 0) for s in SCORES)
    return CellEstimates(valid + merged.get(DONT_KNOW, 0), valid, merged.get(DONT_KNOW, 0), weighted, unweighted)



# Per indicator (in INDICATORS order): which answer codes (CODES order) are in its base, and
# the value each code takes (indicators.PUBLISHED_INDICATORS, as arrays).
_IN_BASE = np.array([d.in_base for d in PUBLISHED_INDICATORS.values()], dtype=float)
_VALUE = np.array([d.values for d in PUBLISHED_INDICATORS.values()], dtype=float)


def _ratio_estimates(
    counts: np.ndarray, weight: np.ndarray, fpc: np.ndarray, n: np.ndarray, starts: np.ndarray, lonely: str = "adjust",
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """Vectorised :func:`estimate_from_counts` for many domains at once.

    ``counts`` has one row per (domain, stratum) with the counts per answer code (CODES order),
    rows of a domain contiguous and starting at ``starts``; ``weight``, ``fpc`` and ``n`` are
    the row's stratum's. Returns per indicator, per domain: (value, se, units in the base, their
    summed weight, design effect); a domain whose base is empty has value NaN (published as
    null), a design effect that is undefined is NaN.

    ``lonely``: the rule for a stratum with one respondent (R's survey.lonely.psu, see
    domain/calibration.py): "adjust" (its z centred at 0), "certainty" (no variance) or
    "average" (the domain's variance times its strata / its strata that are not lonely; strata
    with no unit in the domain's base are not in the domain's design, as in R).
    """
    lengths = np.diff(np.append(starts, len(counts)))
    census = fpc < _CENSUS_EPSILON
    rule, lonely = lonely, n == 1
    safe_n = np.where(lonely, 2.0, n)
    # Codes first, (code, row): sums over a row's six codes are then five whole-array adds, where
    # summing the short inner axis of (row, code) was a third of the estimates' time.
    by_code = np.ascontiguousarray(counts.T)
    out = []
    for base, value in zip(_IN_BASE, _VALUE):
        m = by_code * base[:, None]
        inside = m.sum(axis=0)
        n_inside = np.add.reduceat(inside, starts)
        total_w = np.add.reduceat(weight * inside, starts)
        with np.errstate(invalid="ignore", divide="ignore"):
            estimate = np.add.reduceat(weight * (value @ m), starts) / total_w
            scale = weight / np.repeat(total_w, lengths)
            dev = value[:, None] - np.repeat(estimate, lengths)[None, :]
            weighted_dev = m * dev
            sum_z = scale * weighted_dev.sum(axis=0)
            squares = (weighted_dev * dev).sum(axis=0)
            sum_z2 = scale * scale * squares
            part = np.where(
                lonely, fpc * sum_z2, fpc * safe_n / (safe_n - 1) * np.maximum(sum_z2 - sum_z * sum_z / safe_n, 0.0)
            )
        part = np.where(census | (inside == 0), 0.0, part)
        if rule != "adjust":
            part = np.where(lonely & ~census, 0.0, part)
        variance = np.add.reduceat(part, starts)
        if rule == "average":
            present = np.add.reduceat((inside > 0).astype(float), starts)
            alone = np.add.reduceat(((inside > 0) & lonely & ~census).astype(float), starts)
            with np.errstate(invalid="ignore", divide="ignore"):
                variance = np.where(present > alone, variance * present / (present - alone), np.nan)
        se = np.sqrt(variance)
        estimate = np.where(n_inside == 0, np.nan, estimate)
        element_ss = np.add.reduceat(np.where(inside == 0, 0.0, weight * squares), starts)
        out.append((estimate, se, n_inside, total_w, design_effect(variance, element_ss, n_inside, total_w)))
    return out


def estimate_cells(
    cells: list[Mapping[str, Mapping[str, int]]], design: Mapping[str, _Stratum], lonely: str = "adjust"
) -> list[dict]:
    """Published figures (counts, weighted and unweighted indicators) of many cells at once.

    Each cell is ``stratum -> code -> n``. Equal to :func:`cell_estimates` per cell to rounding
    (tested); strata are taken in sorted order so a cell's figures depend only on its counts.
    """
    if not cells:
        return []
    rows, weight, fpc, n, starts = [], [], [], [], []
    vectors: dict[int, list[int]] = {}  # the same counts object sits in several cells
    for by_stratum in cells:
        starts.append(len(rows))
        for h in sorted(by_stratum):
            codes = by_stratum[h]
            s = design[h]
            vector = vectors.get(id(codes))
            if vector is None:
                vector = vectors[id(codes)] = [codes.get(c, 0) for c in CODES]
            rows.append(vector)
            weight.append(s.weight)
            fpc.append(s.fpc)
            n.append(s.n)
        if not by_stratum:  # never for a published cell; keeps the segments well formed
            rows.append([0] * len(CODES))
            weight.append(1.0)
            fpc.append(1.0)
            n.append(1)
    counts = np.array(rows, dtype=float)
    numbers, values = figure_arrays(counts, np.array(weight), np.array(fpc), np.array(n, dtype=float), np.array(starts), lonely)
    boxed = values.astype(object)
    boxed[np.isnan(values)] = None
    return [dict(zip(FIGURE_NAMES, (*c, *v))) for c, v in zip(numbers.tolist(), boxed.tolist())]


FIGURE_NAMES: tuple[str, ...] = ("n_answers", "n_valid", "n_dont_know") + tuple(
    f"{ind}{suffix}" for ind in INDICATORS for suffix in ESTIMATE_SUFFIXES
)


def _plain_estimates(merged: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """The unweighted figures of many cells: per indicator (value, se), the indicator's base in
    the cell taken as a simple random sample (SE = s / sqrt(n), s with n - 1). It depends on
    the cell's own counts only: a figure resting on the round's total would give that total
    away wherever it is suppressed."""
    out = []
    for base, value in zip(_IN_BASE, _VALUE):
        m = merged * base[None, :]
        inside = m.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            estimate = (m @ value) / inside
            squares = (m * (value[None, :] - estimate[:, None]) ** 2).sum(axis=1)
            se = np.where(inside > 1, np.sqrt(squares / (inside * (inside - 1))), 0.0)
        out.append((np.where(inside == 0, np.nan, estimate), se))
    return out


def figure_arrays(
    counts: np.ndarray, weight: np.ndarray, fpc: np.ndarray, n: np.ndarray, starts: np.ndarray, lonely: str = "adjust"
) -> tuple[np.ndarray, np.ndarray]:
    """The published figures of many cells: (numbers, values), one row per cell, the counts
    (answers, valid, "Ved ikke") and the indicators (FIGURE_NAMES order after the counts),
    NaN where an indicator's base is empty (published as None).

    ``counts`` has one row per (cell, stratum), a cell's rows contiguous from ``starts``, with
    the stratum's weight, fpc and n beside."""
    merged = np.add.reduceat(counts, starts, axis=0)
    weighted = _ratio_estimates(counts, weight, fpc, n, starts, lonely=lonely)
    unweighted = _plain_estimates(merged)
    valid = merged[:, : len(SCORES)].sum(axis=1).round().astype(np.int64)
    dont_know = merged[:, len(SCORES)].round().astype(np.int64)
    numbers = np.stack([valid + dont_know, valid, dont_know], axis=1)
    q = normal_quantile(0.95)
    columns = []
    for ind, (w_est, w_se, w_n, w_total, w_deff), (u_est, u_se) in zip(INDICATORS, weighted, unweighted):
        if ind in PROPORTIONS:
            ci_low, ci_high = proportion_interval(w_est, w_se, w_n)
        else:
            ci_low, ci_high = w_est - q * w_se, w_est + q * w_se
        with np.errstate(divide="ignore", invalid="ignore"):
            n_effective = np.where(w_deff > 0, w_n / w_deff, np.nan)
        figures = {
            "": w_est, "_se": w_se, "_ci_low": ci_low, "_ci_high": ci_high,
            "_population": w_total, "_deff": w_deff, "_n_effective": n_effective,
            "_unweighted": u_est, "_unweighted_se": u_se,
        }
        # An empty base has no estimate: its standard error (0), interval and the rest are not
        # figures either.
        w_missing, u_missing = np.isnan(w_est), np.isnan(u_est)
        for suffix in ESTIMATE_SUFFIXES:
            missing = w_missing if suffix in WEIGHTED_SUFFIXES else u_missing
            columns.append(np.where(missing, np.nan, figures[suffix]))
    return numbers, np.stack(columns, axis=1)
