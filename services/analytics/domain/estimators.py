"""Design-based estimation for Borgerblik's stratified sample.

The method
==========

Design
------
The sample is stratified by municipality x target group (the stratum ``h``).
Within a stratum the respondents are treated as a simple random sample
without replacement of the stratum's population; every unit is its own
primary sampling unit (R: ``svydesign(ids=~1, strata=~stratum, weights=~w,
fpc=~N)``). Notation:

* ``N_h``  population size of stratum h (from the population extract),
* ``n_h``  number of units of stratum h in the analysis file (respondents:
  using respondents' counts in ``w = N_h/n_h`` folds a within-stratum
  non-response adjustment into the design weight, i.e. we assume answers are
  missing at random within a stratum),
* ``w_hi`` the weight of unit i, by default ``N_h / n_h`` (disproportional
  allocation: small municipalities and low-response groups are oversampled,
  so the weights differ a lot between strata),
* ``f_h = n_h / N_h`` the sampling fraction.

Point estimators
----------------
A mean over a domain ``D`` (a subpopulation such as "answered the question",
"municipality = Aarhus", or both) is the ratio estimator

    ybar_D = sum_i w_i d_i y_i / sum_i w_i d_i          d_i = 1{i in D}

A proportion is the same estimator applied to a 0/1 indicator. Units that did
not answer, or answered "Ved ikke", are outside the domain of a mean (R:
``na.rm=TRUE``, which is itself a domain restriction).

Variance (Taylor linearisation)
-------------------------------
The linearised (influence) values of the ratio are

    z_hi = d_hi w_hi (y_hi - ybar_D) / sum_j w_j d_j

and the stratified without-replacement variance estimator is

    V(ybar_D) = sum_h (1 - f_h) * n_h / (n_h - 1) * sum_i (z_hi - zbar_h)^2

where ``zbar_h`` is the mean of ``z`` over *all* n_h sampled units of the
stratum, zeros for units outside the domain included. Keeping those zeros
(instead of dropping units outside the domain) is what makes domain
estimation right when a domain cuts across strata: the domain size within a
stratum is random, and the zeros carry that variability. This is what R's
``subset()``/``svyby()`` do for a ``survey.design2`` object.

* A stratum that is fully enumerated (``f_h = 1``, e.g. a small municipality
  whose whole population was sampled and answered) contributes 0. Like R,
  any stratum with ``1 - f_h < 1e-7`` is treated as fully enumerated.
* Without population sizes (``population_sizes=None``) the factor
  ``(1 - f_h)`` is 1 (with-replacement approximation).

Lonely strata (n_h = 1)
-----------------------
With a single sampled unit the within-stratum variance cannot be estimated.
Two policies, each matching an R ``options(survey.lonely.psu=...)`` setting:

* ``"fail"`` (R's default): raise :class:`LonelyStratumError` when such a
  stratum contributes to an estimate. As in R, a lonely stratum whose unit is
  outside the domain (or did not answer) does not raise for an uncalibrated
  design, and a fully enumerated lonely stratum never raises.
* ``"adjust"`` (Borgerblik's default): the unit's linearised value is centred
  at the population mean of ``z`` (which is 0 for a ratio estimator) instead
  of the stratum mean, contributing ``(1 - f_h) * z_h1^2``. This is
  conservative and keeps a production run from stopping because one small
  municipality x target-group cell got a single respondent.

Confidence intervals
--------------------
A mean's interval is ``estimate +/- q * SE`` with ``q`` the standard normal
quantile (``q = 1.959963984540054`` for 95 %). This is what ``confint()``
gives by default for ``svymean`` results in R (``df = Inf``). The design's
degrees of freedom (``n - H``, R's ``degf()``) are reported on each
:class:`Estimate`; we follow R's ``confint`` default and use the normal
quantile throughout.

A proportion's interval is the logit interval (:func:`proportion_interval`),
R's ``svyciprop(method = "logit", df = Inf)``: the Wald interval of
``logit(p)``, whose standard error is ``SE / (p (1 - p))`` by the delta
method, mapped back with the inverse logit. It stays inside (0, 1), and is
asymmetric near 0 and 1 where a Wald interval of a small share falls below 0.
Where the estimate is exactly 0 or 1 the logit does not exist (R's
``svyciprop`` then gives a degenerate interval at the estimate); the interval
is then Clopper-Pearson's exact one for 0 (or n) of the n units in the base,
``[0, 1 - (alpha/2)^(1/n)]`` (R: ``binom.test(0, n)``), which is Korn and
Graubard's interval with the design effect taken as 1 where none can be
estimated.

Design effect
-------------
R's ``svymean(..., deff = TRUE)``: the design variance over the variance of
the same estimator under simple random sampling without replacement of as
many units from the estimated population,

    deff = V(ybar_D) / (S^2 / n * (1 - n / W)),
    S^2  = n / (n - 1) * sum_i w_i d_i (y_i - ybar_D)^2 / W,

with ``n`` the units in the domain with a value and ``W`` their summed
weight. It is undefined (None) where the SRS variance is 0: a single unit,
all values equal, or ``W = n`` (every unit its own population: a census, or
weights of 1 before the frame has arrived). The effective sample size is
``n / deff`` (None where the design effect is None or 0).

Unweighted figures
------------------
:meth:`StratifiedDesign.unweighted` gives the same design without weights,
strata or finite-population correction (R: ``svydesign(ids=~1, data=...)``):
the plain mean with ``SE = s / sqrt(n)``, domains again by zeroing out.

Post-stratification and raking (calibration)
--------------------------------------------
:func:`rake` adjusts the weights so that the weighted counts reproduce known
population margins (e.g. gender and age band from the population extract) by
iterative proportional fitting. The calibrated weights are ``w_i = g_i w0_i``.
:func:`post_stratify` is the one-margin case. The variance of a calibrated
estimate replaces ``z`` by the calibration (GREG) residuals

    e_i = w_i * (v_i - x_i' B),    v_i = d_i (y_i - ybar_D) / sum_j w_j d_j,

where ``x_i`` holds the margin-category indicators of unit i and ``B`` is the
regression of ``v`` on ``x`` weighted by the *pre-calibration* weights
``w0``; ``e`` then goes into the same stratified formula. This is the
linearisation R uses for ``calibrate(..., calfun="raking")`` (and, for one
margin, for ``postStratify``): its residuals come from
``qr.resid(qr(X * sqrt(w0)), z / (g * sqrt(w0))) * g * sqrt(w0)``, which is the
expression above. We compute the regression by backfitting (alternating
weighted category means), which converges to the exact least-squares fit.
Note that R's ``rake()`` (rather than ``calibrate``) gives the same weights but
a cruder variance approximation; our figures match ``calibrate``.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import Literal

import numpy as np

__all__ = [
    "CalibrationError",
    "EmptyDomainError",
    "Estimate",
    "LonelyStratumError",
    "LonelyStratumPolicy",
    "Margin",
    "StratifiedDesign",
    "normal_quantile",
    "post_stratify",
    "proportion_interval",
    "rake",
]

LonelyStratumPolicy = Literal["fail", "adjust"]

# R treats a stratum as fully enumerated when 1 - n/N is below this.
_CENSUS_EPSILON = 1e-7


class LonelyStratumError(ValueError):
    """A stratum with one sampled unit contributes, and the policy is "fail"."""


class EmptyDomainError(ValueError):
    """The domain has no units with a value (nothing to estimate)."""


class CalibrationError(ValueError):
    """Calibration targets are inconsistent or raking did not converge."""


def normal_quantile(level: float) -> float:
    """Two-sided standard normal quantile for a confidence level (0.95 -> 1.96)."""
    if not 0.0 < level < 1.0:
        raise ValueError(f"confidence level must be in (0, 1), got {level}")
    return NormalDist().inv_cdf(1.0 - (1.0 - level) / 2.0)


def proportion_interval(p, se, n, level: float = 0.95):
    """The logit interval of a proportion ``p`` with standard error ``se`` (R's
    ``svyciprop(method = "logit", df = Inf)``); for ``p`` 0 or 1 the exact interval of 0 (or
    ``n``) out of ``n`` (the module docstring says why). Takes floats or numpy arrays alike
    (elementwise; NaN in, NaN out); returns (low, high)."""
    q = normal_quantile(level)
    half_alpha = (1.0 - level) / 2.0
    p, se, n = np.asarray(p, dtype=float), np.asarray(se, dtype=float), np.asarray(n, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        inner = (p > 0.0) & (p < 1.0)
        safe = np.where(inner, p, 0.5)
        centre = np.log(safe / (1.0 - safe))
        spread = q * se / (safe * (1.0 - safe))
        low = 1.0 / (1.0 + np.exp(-(centre - spread)))
        high = 1.0 / (1.0 + np.exp(-(centre + spread)))
        exact = half_alpha ** (1.0 / np.maximum(n, 1.0))  # lower bound for n of n; 1 - it: upper for 0 of n
    low = np.where(inner, low, np.where(p >= 1.0, exact, 0.0))
    high = np.where(inner, high, np.where(p <= 0.0, 1.0 - exact, 1.0))
    nan = np.isnan(p)
    low, high = np.where(nan, np.nan, low), np.where(nan, np.nan, high)
    if low.ndim == 0:
        return float(low), float(high)
    return low, high


def design_effect(variance, element_ss, n, total_weight):
    """R's ``svymean(deff = TRUE)`` design effect from the design ``variance``, the weighted sum
    of squares ``element_ss = sum w (y - ybar)^2`` over the ``n`` units with a value and their
    summed weight ``total_weight``: NaN where the SRS variance is 0 or undefined. Floats or numpy
    arrays alike."""
    variance, element_ss = np.asarray(variance, dtype=float), np.asarray(element_ss, dtype=float)
    n, total_weight = np.asarray(n, dtype=float), np.asarray(total_weight, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        s2 = n / (n - 1.0) * element_ss / total_weight
        srs = s2 * (total_weight - n) / (total_weight * n)
        defined = (n > 1.0) & (total_weight - n > _CENSUS_EPSILON * total_weight) & (srs > 0.0)
        deff = np.where(defined, variance / np.where(defined, srs, 1.0), np.nan)
    return float(deff) if deff.ndim == 0 else deff


def ratio_estimate(
    estimate: float,
    variance: float,
    element_ss: float,
    n_inside: int,
    total_w: float,
    degrees_of_freedom: int,
    level: float = 0.95,
    *,
    proportion: bool = False,
) -> Estimate:
    """The published estimate of a ratio from its value and linearised variance: the standard
    error, the interval (for a proportion the logit interval) and the design effect (from the
    weighted element sum of squares). Every estimator of a mean or share ends here."""
    se = math.sqrt(variance)
    if proportion:
        ci_low, ci_high = proportion_interval(estimate, se, n_inside, level)
    else:
        q = normal_quantile(level)
        ci_low, ci_high = estimate - q * se, estimate + q * se
    deff = design_effect(variance, element_ss, n_inside, total_w)
    return Estimate(estimate, se, ci_low, ci_high, level, n_inside, total_w, degrees_of_freedom, None if math.isnan(deff) else deff)


@dataclass(frozen=True, slots=True)
class Estimate:
    """A point estimate with its design-based uncertainty.

    ``n`` is the number of sampled units that contributed (in the domain and
    with a value); ``weighted_n`` their summed weight, i.e. the estimated
    population size of the domain. ``degrees_of_freedom`` is the design's
    (n - H), for information: the interval uses the normal quantile.
    ``deff`` is the design effect (R's ``svymean(deff = TRUE)``; None where
    it is undefined, see the module docstring).
    """

    value: float
    se: float
    ci_low: float
    ci_high: float
    level: float
    n: int
    weighted_n: float
    degrees_of_freedom: int
    deff: float | None = None

    @property
    def variance(self) -> float:
        return self.se * self.se

    @property
    def n_effective(self) -> float | None:
        """The effective sample size n / deff (None where the design effect is None or 0)."""
        return self.n / self.deff if self.deff else None

    @property
    def cv(self) -> float:
        """Coefficient of variation SE / |estimate| (inf for an estimate of 0)."""
        return self.se / abs(self.value) if self.value else math.inf


@dataclass(frozen=True, slots=True)
class Margin:
    """One calibration margin: each unit's category and the population totals.

    ``labels[i]`` is unit i's category (use a tuple for a crossed margin such
    as (municipality, gender)); ``totals`` maps every category to its
    population count.
    """

    labels: Sequence[Hashable]
    totals: Mapping[Hashable, float]


@dataclass(frozen=True, slots=True)
class _Calibration:
    base_weights: tuple[float, ...]
    margins: tuple[tuple[Hashable, ...], ...]  # per margin: each unit's category


class StratifiedDesign:
    """A stratified, single-stage sample: one row per unit.

    ``strata[i]`` is unit i's stratum. Give ``weights`` (one per unit) and/or
    ``population_sizes`` (N_h per stratum). With only population sizes the
    weights are ``N_h / n_h``; with both, the given weights are used and the
    population sizes serve the finite-population correction, as in R.
    """

    def __init__(
        self,
        strata: Sequence[Hashable],
        weights: Sequence[float] | None = None,
        population_sizes: Mapping[Hashable, float] | None = None,
        *,
        lonely: LonelyStratumPolicy = "adjust",
        _calibration: _Calibration | None = None,
    ) -> None:
        if lonely not in ("fail", "adjust"):
            raise ValueError(f"lonely must be 'fail' or 'adjust', got {lonely!r}")
        self._strata: tuple[Hashable, ...] = tuple(strata)
        if not self._strata:
            raise ValueError("a design needs at least one unit")
        self.lonely: LonelyStratumPolicy = lonely

        # Units of each stratum, in input order (the order matters only for
        # floating-point summation, which we keep stable).
        members: dict[Hashable, list[int]] = defaultdict(list)
        for i, h in enumerate(self._strata):
            members[h].append(i)
        self._members: dict[Hashable, tuple[int, ...]] = {
            h: tuple(ix) for h, ix in members.items()
        }

        if population_sizes is not None:
            pop: dict[Hashable, float] = {}
            for h, ix in self._members.items():
                if h not in population_sizes:
                    raise KeyError(f"no population size for stratum {h!r}")
                big_n = float(population_sizes[h])
                if not big_n >= len(ix):
                    raise ValueError(
                        f"stratum {h!r}: population size {big_n} is smaller than "
                        f"the {len(ix)} sampled units"
                    )
                pop[h] = big_n
            self._population: dict[Hashable, float] | None = pop
        else:
            self._population = None

        if weights is None:
            if self._population is None:
                raise ValueError("give weights, population_sizes or both")
            w = [self._population[h] / len(self._members[h]) for h in self._strata]
        else:
            w = [float(x) for x in weights]
            if len(w) != len(self._strata):
                raise ValueError("weights and strata differ in length")
        if not all(math.isfinite(x) and x > 0 for x in w):
            raise ValueError("weights must be finite and positive")
        self._weights: tuple[float, ...] = tuple(w)
        self._calibration = _calibration

    # -- description -------------------------------------------------------

    @property
    def n(self) -> int:
        return len(self._strata)

    @property
    def strata(self) -> tuple[Hashable, ...]:
        return self._strata

    @property
    def weights(self) -> tuple[float, ...]:
        return self._weights

    @property
    def stratum_sizes(self) -> dict[Hashable, int]:
        """n_h: sampled units per stratum."""
        return {h: len(ix) for h, ix in self._members.items()}

    @property
    def population_sizes(self) -> dict[Hashable, float] | None:
        return None if self._population is None else dict(self._population)

    @property
    def is_calibrated(self) -> bool:
        return self._calibration is not None

    @property
    def degrees_of_freedom(self) -> int:
        """Design degrees of freedom n - H (R's ``degf``)."""
        return self.n - len(self._members)

    def unweighted(self) -> StratifiedDesign:
        """The same units as an unstratified, unweighted sample without fpc."""
        return StratifiedDesign(
            [None] * self.n, [1.0] * self.n, None, lonely=self.lonely
        )

    # -- estimation ----------------------------------------------------------

    def mean(
        self,
        y: Sequence[float | None],
        domain: Sequence[bool] | None = None,
        *,
        level: float = 0.95,
        proportion: bool = False,
    ) -> Estimate:
        """Weighted mean of ``y`` over ``domain``; ``None`` values are left out.

        ``proportion``: ``y`` is 0/1 and the interval is the logit interval
        (:func:`proportion_interval`). Raises :class:`EmptyDomainError` when no
        unit of the domain has a value.
        """
        if len(y) != self.n:
            raise ValueError(f"expected {self.n} values, got {len(y)}")
        if domain is not None and len(domain) != self.n:
            raise ValueError(f"expected {self.n} domain flags, got {len(domain)}")
        inside = [
            v is not None and (domain is None or bool(domain[i]))
            for i, v in enumerate(y)
        ]
        w = self._weights
        total_w = math.fsum(w[i] for i in range(self.n) if inside[i])
        n_inside = sum(inside)
        if n_inside == 0:
            raise EmptyDomainError("no unit of the domain has a value")
        yv = [float(v) if ok and v is not None else 0.0 for v, ok in zip(y, inside)]
        estimate = math.fsum(w[i] * yv[i] for i in range(self.n) if inside[i]) / total_w

        # v_i = d_i (y_i - ybar) / sum w d; the linearised value is w_i v_i.
        v = [(yv[i] - estimate) / total_w if inside[i] else 0.0 for i in range(self.n)]
        if self._calibration is not None:
            v = _calibration_residuals(v, self._calibration)
        z = [w[i] * v[i] for i in range(self.n)]
        variance = self._stratified_variance(z, inside)
        element_ss = math.fsum(w[i] * (yv[i] - estimate) ** 2 for i in range(self.n) if inside[i])
        return ratio_estimate(
            estimate, variance, element_ss, n_inside, total_w, self.degrees_of_freedom, level, proportion=proportion
        )

    def proportion(
        self,
        indicator: Sequence[bool | None],
        domain: Sequence[bool] | None = None,
        *,
        level: float = 0.95,
    ) -> Estimate:
        """Weighted share of units with ``indicator`` True among those not None."""
        y = [None if x is None else (1.0 if x else 0.0) for x in indicator]
        return self.mean(y, domain, level=level, proportion=True)

    def _stratified_variance(self, z: Sequence[float], inside: Sequence[bool]) -> float:
        parts: list[float] = []
        for h, ix in self._members.items():
            n_h = len(ix)
            if self._population is None:
                fpc = 1.0
            else:
                fpc = 1.0 - n_h / self._population[h]
                if fpc < _CENSUS_EPSILON:
                    continue  # fully enumerated: no sampling variance
            if n_h == 1:
                i = ix[0]
                # An uncalibrated stratum whose only unit is outside the domain
                # contributes nothing and, as in R, is no error. Calibration
                # spreads residuals to every unit, so there it always counts.
                if not inside[i] and self._calibration is None:
                    continue
                if self.lonely == "fail":
                    raise LonelyStratumError(
                        f"stratum {h!r} has a single sampled unit; use "
                        "lonely='adjust' or collapse strata"
                    )
                parts.append(fpc * z[i] * z[i])
                continue
            zh = [z[i] for i in ix]
            zbar = math.fsum(zh) / n_h
            ss = math.fsum((x - zbar) ** 2 for x in zh)
            parts.append(fpc * n_h / (n_h - 1) * ss)
        return math.fsum(parts)


# -- calibration ---------------------------------------------------------------


def rake(
    design: StratifiedDesign,
    margins: Sequence[Margin],
    *,
    max_iterations: int = 1000,
    tolerance: float = 1e-12,
) -> StratifiedDesign:
    """Rake the design's weights to the population ``margins`` (IPF).

    Iterates proportional adjustments margin by margin until every weighted
    margin total is within ``tolerance`` (relative) of its target. Returns a
    new design whose estimates use the raked weights and the calibration
    variance described in the module docstring.
    """
    if design.is_calibrated:
        # Stacked calibrations would need the earlier residuals chained in;
        # rake all margins in one call instead.
        raise CalibrationError("design is already calibrated; rake all margins at once")
    if not margins:
        raise CalibrationError("at least one margin is needed")
    n = design.n
    labels: list[tuple[Hashable, ...]] = []
    targets: list[dict[Hashable, float]] = []
    grand_totals: list[float] = []
    for m in margins:
        lab = tuple(m.labels)
        if len(lab) != n:
            raise ValueError(f"margin has {len(lab)} labels for {n} units")
        present = set(lab)
        missing = present - set(m.totals)
        if missing:
            raise CalibrationError(f"no population total for categories {sorted(map(repr, missing))}")
        tgt = {c: float(t) for c, t in m.totals.items()}
        unreachable = [c for c, t in tgt.items() if t > 0 and c not in present]
        if unreachable:
            # No respondent in a category with population: raking cannot
            # reach that total (R's postStratify refuses this too).
            raise CalibrationError(
                f"categories with population but no sampled unit: {sorted(map(repr, unreachable))}"
            )
        if any(tgt[c] <= 0 for c in present):
            raise CalibrationError("a sampled category has a population total of 0")
        labels.append(lab)
        targets.append(tgt)
        grand_totals.append(math.fsum(tgt.values()))
    if max(grand_totals) - min(grand_totals) > 1e-9 * max(grand_totals):
        raise CalibrationError(f"margins disagree on the population size: {grand_totals}")

    w = list(design.weights)
    for _ in range(max_iterations):
        for lab, tgt in zip(labels, targets):
            sums = _group_sums(lab, w)
            factor = {c: tgt[c] / s for c, s in sums.items()}
            w = [wi * factor[c] for wi, c in zip(w, lab)]
        worst = 0.0
        for lab, tgt in zip(labels, targets):
            for c, s in _group_sums(lab, w).items():
                worst = max(worst, abs(s - tgt[c]) / tgt[c])
        if worst <= tolerance:
            break
    else:
        raise CalibrationError(f"raking did not converge in {max_iterations} iterations")

    return StratifiedDesign(
        design.strata,
        w,
        design.population_sizes,
        lonely=design.lonely,
        _calibration=_Calibration(tuple(design.weights), tuple(labels)),
    )


def post_stratify(
    design: StratifiedDesign,
    labels: Sequence[Hashable],
    totals: Mapping[Hashable, float],
) -> StratifiedDesign:
    """Post-stratify to one (possibly crossed) classification: raking with one margin."""
    return rake(design, [Margin(labels, totals)])


def _group_sums(labels: Sequence[Hashable], values: Sequence[float]) -> dict[Hashable, float]:
    groups: dict[Hashable, list[float]] = defaultdict(list)
    for c, x in zip(labels, values):
        groups[c].append(x)
    return {c: math.fsum(xs) for c, xs in groups.items()}


def _calibration_residuals(
    v: Sequence[float],
    cal: _Calibration,
    *,
    max_sweeps: int = 100_000,
) -> list[float]:
    """Residuals of the w0-weighted least-squares fit of ``v`` on margin dummies.

    Backfitting: subtract the w0-weighted category mean of the current
    residual, margin after margin, until the adjustments vanish. Each sweep is
    a Gauss-Seidel step on the normal equations, so this converges to the
    least-squares residual (the fit itself need not be unique when dummy sets
    overlap, the residual is).
    """
    w0 = cal.base_weights
    r = list(v)
    scale = max((abs(x) for x in v), default=0.0)
    if scale == 0.0:
        return r
    group_w = [_group_sums(lab, w0) for lab in cal.margins]
    for _ in range(max_sweeps):
        biggest = 0.0
        for lab, gw in zip(cal.margins, group_w):
            sums = _group_sums(lab, [wi * ri for wi, ri in zip(w0, r)])
            means = {c: s / gw[c] for c, s in sums.items()}
            biggest = max(biggest, max(abs(m) for m in means.values()))
            r = [ri - means[c] for ri, c in zip(r, lab)]
        if biggest <= 1e-14 * scale:
            return r
    raise CalibrationError("calibration residuals did not converge")
