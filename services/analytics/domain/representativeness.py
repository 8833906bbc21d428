"""How representative the respondents are: response propensities, the R-indicator and partial
R-indicators (Schouten, Cobben and Bethlehem 2009; Schouten, Shlomo and Skinner 2011).

Every sampled citizen i has a response propensity rho_i, estimated by a logistic regression of
"answered" on frame variables (target group, gender, age band, duration band; nationally the
municipality too), each unit weighted by its design weight d_i = 1 / pi_i, so the fit speaks for
the population. With N = sum d_i and rho_bar = sum d_i rho_i / N:

    S(rho) = sqrt( sum_i d_i (rho_i - rho_bar)^2 / (N - 1) )
    R      = 1 - 2 S(rho)              (1: every group answers alike; 0: as unequal as can be)
    CV     = S(rho) / rho_bar          (the maximal bias of a mean, relative, per unit of the
                                        outcome's standard deviation: Schouten et al.)

Partial R-indicators say which variable makes the response unrepresentative:

* unconditional, variable Z: P_U(Z) = sqrt( sum_k N_k (rho_bar_k - rho_bar)^2 / N ), the
  between-category spread of the propensities over Z's categories k, and per category
  P_U(Z, k) = sqrt(N_k / N) (rho_bar_k - rho_bar) (negative: the category answers less);
* conditional, variable Z: P_C(Z) = sqrt( sum_i d_i (rho_i - rho_bar_{c(i)})^2 / (N - 1) ), the
  spread Z adds within the cells c of the other variables.

Everything works on cells of identical units (same frame variables, same weight): sampled and
answered counts per cell.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, slots=True)
class SampleCell:
    """Sampled citizens alike in the frame variables and the design weight, and how many answered."""

    values: tuple[str, ...]  # one per variable, in the order of the variables given to the fit
    weight: float  # design weight d = 1 / pi
    sampled: int
    answered: int


@dataclass(frozen=True)
class Representativeness:
    variables: tuple[str, ...]
    response_rate: float  # design-weighted: sum d answered / sum d sampled
    propensity_mean: float
    propensity_sd: float
    r_indicator: float
    cv: float
    partial_unconditional: dict[str, float]
    partial_conditional: dict[str, float]
    category_unconditional: dict[str, dict[str, float]]  # variable -> category -> P_U(Z, k)
    propensities: np.ndarray  # per cell
    category_mean: dict[str, dict[str, float]]  # variable -> category -> rho_bar_k (its weighted response rate)

    def to_json(self) -> dict:
        return {
            "variables": list(self.variables),
            "response_rate": self.response_rate,
            "propensity_mean": self.propensity_mean,
            "propensity_sd": self.propensity_sd,
            "r_indicator": self.r_indicator,
            "cv": self.cv,
            "partial_unconditional": self.partial_unconditional,
            "partial_conditional": self.partial_conditional,
            "category_unconditional": self.category_unconditional,
        }


def fit_propensities(cells: Sequence[SampleCell], n_variables: int, *, max_iterations: int = 100) -> np.ndarray:
    """Weighted logistic regression (main effects, treatment coding) of answered on the cells'
    variables by iteratively reweighted least squares; the fitted propensity per cell. Collinear
    or empty categories get the minimum-norm solution (the fitted values stay unique)."""
    levels = [sorted({c.values[j] for c in cells}) for j in range(n_variables)]
    columns = [(j, lvl) for j, lv in enumerate(levels) for lvl in lv[1:]]
    position = {col: 1 + i for i, col in enumerate(columns)}
    x = np.zeros((len(cells), 1 + len(columns)))
    x[:, 0] = 1.0
    for i, c in enumerate(cells):
        for j, v in enumerate(c.values):
            if (j, v) in position:
                x[i, position[(j, v)]] = 1.0
    trials = np.array([c.weight * c.sampled for c in cells], dtype=float)
    successes = np.array([c.weight * c.answered for c in cells], dtype=float)
    beta = np.zeros(x.shape[1])
    overall = successes.sum() / trials.sum()
    beta[0] = math.log(overall / (1 - overall)) if 0 < overall < 1 else 0.0
    for _ in range(max_iterations):
        eta = x @ beta
        p = 1.0 / (1.0 + np.exp(-eta))
        w = trials * p * (1 - p)
        gradient = x.T @ (successes - trials * p)
        hessian = x.T @ (w[:, None] * x)
        step = np.linalg.lstsq(hessian, gradient, rcond=None)[0]
        beta = beta + step
        if np.max(np.abs(step)) < 1e-10:
            break
    return 1.0 / (1.0 + np.exp(-(x @ beta)))


def representativeness(cells: Sequence[SampleCell], variables: Sequence[str]) -> Representativeness:
    """R-indicator, CV and partial R-indicators of a sample's response (see the module)."""
    cells = [c for c in cells if c.sampled > 0]
    if not cells:
        raise ValueError("no sampled citizen")
    rho = fit_propensities(cells, len(variables))
    d = np.array([c.weight * c.sampled for c in cells], dtype=float)  # population each cell stands for
    big_n = d.sum()
    mean = float((d * rho).sum() / big_n)
    sd = math.sqrt(float((d * (rho - mean) ** 2).sum()) / (big_n - 1))
    answered = sum(c.weight * c.answered for c in cells)
    unconditional, conditional, by_category, category_mean = {}, {}, {}, {}
    for j, name in enumerate(variables):
        groups: dict[str, list[int]] = defaultdict(list)
        others: dict[tuple, list[int]] = defaultdict(list)
        for i, c in enumerate(cells):
            groups[c.values[j]].append(i)
            others[c.values[:j] + c.values[j + 1:]].append(i)
        between, per_category, means = 0.0, {}, {}
        for level, ix in sorted(groups.items()):
            n_k = d[ix].sum()
            mean_k = means[level] = float((d[ix] * rho[ix]).sum() / n_k)
            between += n_k * (mean_k - mean) ** 2
            per_category[level] = math.sqrt(n_k / big_n) * (mean_k - mean)
        unconditional[name] = math.sqrt(between / big_n)
        by_category[name], category_mean[name] = per_category, means
        within = 0.0
        for ix in others.values():
            n_c = d[ix].sum()
            mean_c = (d[ix] * rho[ix]).sum() / n_c
            within += float((d[ix] * (rho[ix] - mean_c) ** 2).sum())
        conditional[name] = math.sqrt(within / (big_n - 1))
    return Representativeness(
        tuple(variables), answered / big_n, mean, sd, 1.0 - 2.0 * sd, sd / mean if mean else math.inf,
        unconditional, conditional, by_category, rho, category_mean,
    )


# The R-indicator's readings, from its lower limit down: at least 0.9 the groups answer much
# alike, at least 0.8 noticeably unlike, below that very unlike.
QUALITY_LIMITS = ((0.9, "good"), (0.8, "fair"))


def quality(r_indicator: float) -> str:
    """"good", "fair" or "skewed": the words every reading of an R-indicator uses."""
    return next((name for limit, name in QUALITY_LIMITS if r_indicator >= limit), "skewed")


def reading_da(r: Representativeness, labels: dict[str, str] | None = None) -> str:
    """A plain-language Danish reading of the R-indicator and the partial R-indicators."""
    labels = labels or {"maalgruppe": "målgruppe", "gender": "køn", "age_band": "aldersgruppe",
                        "duration_band": "varighed", "kommunekode": "kommune"}
    level = {
        "good": "Svarpersonerne ligner stikprøven godt: svarprocenten er nogenlunde den samme i alle grupper",
        "fair": "Svarpersonerne ligner stikprøven rimeligt, men nogle grupper svarer mærkbart mindre end andre",
        "skewed": "Svarpersonerne er skævt fordelt: nogle grupper svarer meget mindre end andre, og tallene kan hælde mod dem, der svarer mest",
    }[quality(r.r_indicator)]
    text = f"{level} (R-indikator {r.r_indicator:.2f}, hvor 1 er helt ens svarprocenter)."
    if r.partial_unconditional:
        worst = max(r.partial_unconditional, key=r.partial_unconditional.get)
        categories = r.category_unconditional[worst]
        low = min(categories, key=categories.get)
        text += (f" Skævheden kommer mest fra {labels.get(worst, worst)}: gruppen {low} svarer mindst."
                 " Kalibrerede tal vægter for den skævhed, rammen kender.")
    return text
