"""Allocation of a round's sample over strata (kommune × målgruppe).

Method (seed 004, "Stikprøveudvælgelse"):

1. Each municipality gets a *target* sample from a size curve (data in `AllocationRules`):
   1,000 to 2,000 by default, growing with the log of the municipality's eligible
   population. The curve is sub-linear, so small municipalities get a much larger
   sampling fraction (sometimes everyone), as the seed asks.
2. The target is spread over the target groups by *power allocation of expected answers*:
   n_h ∝ N_h^α / r_h, i.e. expected answers n_h·r_h ∝ N_h^α (default α = ½, square-root).
   Dividing by the response rate r_h is what over-samples low-response groups
   (aktivitetsparate): it is the answers, not the letters, that we spread. α = 1 would
   make answers mirror the population (best for the municipality total, but small groups
   get too few answers to report above the GDPR threshold of 5); α = 0 gives every group
   equal answers (best for group comparisons, but heavy weights for the municipality
   total). α = ½ is the usual compromise (Bankier's power allocation).
3. Each n_h is capped at N_h (the capped surplus goes to the other groups) and, when a
   per-stratum minimum of expected answers is configured, floored at what that needs.
4. If the result has fewer than `min_expected_answers` (200) expected answers, the total
   is raised, keeping the same shape, to the smallest total that reaches 200 — even above
   `max_sample`, because the 200 rule comes first. If even the whole population cannot
   reach 200, everyone is taken and a warning states the exact shortfall.
   Unless `max_sample_is_cap` (the operator set a maximum): then the operator's maximum wins,
   the municipality gets at most `max_sample`, and the conflict is reported (`CapConflict`:
   the rule it overrode, the sample that rule asked for, the answers expected at the cap).
5. Rounding to whole citizens uses largest remainders, so totals are exact and
   lower ≤ n_h ≤ N_h holds by construction.

Priority of the rules, strongest first: n_h ≤ N_h (hard) > an operator's cap
(`max_sample_is_cap`) > 200 expected answers per municipality > per-stratum minimum answers >
min/max sample size.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from itertools import pairwise
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from .strata import Kommunekode, Maalgruppe, StratumKey

# Planning assumptions only: replace them with observed rates once a round has run.
# Seed 004 says "ca. 20-25 %, varying by group", lowest for aktivitetsparate.
DEFAULT_RESPONSE_RATES: dict[Maalgruppe, float] = {
    "dagpenge": 0.30,
    "sygedagpenge": 0.27,
    "jobafklaring": 0.23,
    "job_og_uddannelsesparate": 0.22,
    "aktivitetsparate": 0.18,
}

ResponseRate = Annotated[float, Field(gt=0.0, le=1.0)]


class AllocationError(ValueError):
    """An allocation input or an operator override breaks a hard rule."""


class SizePoint(BaseModel):
    """One point of the size curve: a municipality with `population` eligible citizens
    gets a target sample of `sample`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    population: int = Field(gt=0)
    sample: int = Field(gt=0)


class AllocationRules(BaseModel):
    """Configurable allocation rules; every number here is policy, not code."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    min_sample: int = Field(1_000, ge=0)
    max_sample: int = Field(2_000, ge=1)
    # Between points the target is interpolated linearly in log(population)
    # ("log_linear") or held constant from each point on ("step": bands).
    size_curve: tuple[SizePoint, ...] = (
        SizePoint(population=1_500, sample=1_000),
        SizePoint(population=25_000, sample=2_000),
    )
    size_interpolation: Literal["log_linear", "step"] = "log_linear"
    response_rates: dict[Maalgruppe, ResponseRate] = Field(
        default_factory=lambda: dict(DEFAULT_RESPONSE_RATES)
    )
    min_expected_answers: float = Field(200.0, ge=0.0)
    # Optional: so that small groups can be compared within a municipality.
    min_expected_answers_per_stratum: float | None = Field(None, ge=0.0)
    # α in n_h ∝ N_h^α / r_h; see the module docstring.
    allocation_power: float = Field(0.5, ge=0.0, le=1.0)
    # max_sample as the operator's cap: it wins over the answer minimums (step 4).
    max_sample_is_cap: bool = False

    @model_validator(mode="after")
    def _check(self) -> AllocationRules:
        if self.min_sample > self.max_sample:
            raise ValueError("min_sample must not exceed max_sample")
        if not self.size_curve:
            raise ValueError("size_curve needs at least one point")
        pops = [p.population for p in self.size_curve]
        if any(b <= a for a, b in pairwise(pops)):
            raise ValueError("size_curve populations must be strictly increasing")
        samples = [p.sample for p in self.size_curve]
        if any(b < a for a, b in pairwise(samples)):
            # A bigger municipality never gets a smaller target: keeps rules explainable.
            raise ValueError("size_curve samples must be non-decreasing")
        return self

    def target_sample(self, population: int) -> int:
        """Target sample for a municipality of this (eligible) population size,
        clamped to [min_sample, max_sample]. Not yet capped at the population."""
        curve = self.size_curve
        if population <= curve[0].population:
            value = float(curve[0].sample)
        elif population >= curve[-1].population:
            value = float(curve[-1].sample)
        else:
            i = max(k for k, p in enumerate(curve) if p.population <= population)
            lo, hi = curve[i], curve[i + 1]
            if self.size_interpolation == "step":
                value = float(lo.sample)
            else:
                t = math.log(population / lo.population) / math.log(hi.population / lo.population)
                value = lo.sample + t * (hi.sample - lo.sample)
        target = math.floor(value + 0.5)
        return min(self.max_sample, max(self.min_sample, target))

    def response_rate(self, maalgruppe: Maalgruppe) -> float:
        try:
            return self.response_rates[maalgruppe]
        except KeyError:
            raise AllocationError(
                f"no expected response rate for maalgruppe {maalgruppe!r}"
            ) from None


class WarningCode(StrEnum):
    # Even taking the whole population gives fewer expected answers than required.
    MIN_ANSWERS_UNREACHABLE = "min_answers_unreachable"
    # Reachable, but this allocation (after an operator override) does not reach it.
    MIN_ANSWERS_NOT_MET = "min_answers_not_met"
    STRATUM_MIN_ANSWERS_UNREACHABLE = "stratum_min_answers_unreachable"
    STRATUM_MIN_ANSWERS_NOT_MET = "stratum_min_answers_not_met"
    ABOVE_MAX_SAMPLE = "above_max_sample"
    BELOW_MIN_SAMPLE = "below_min_sample"
    # The operator's cap kept the sample below what an answer minimum asks for.
    CAPPED_BY_MAX_SAMPLE = "capped_by_max_sample"


@dataclass(frozen=True, slots=True)
class CapConflict:
    """The operator's max_sample against an answer rule, in one municipality: the cap won."""

    rule: Literal["min_expected_answers", "min_expected_answers_per_stratum"]
    cap: int  # the operator's max_sample: the municipality's sample
    sample_needed: int  # what the rule asked for (the whole population when even that falls short)
    expected_answers: float  # at the cap
    expected_answers_needed: float  # the rule's minimum

    def to_json(self) -> dict:
        return {
            "rule": self.rule,
            "cap": self.cap,
            "sample_needed": self.sample_needed,
            "expected_answers": self.expected_answers,
            "expected_answers_needed": self.expected_answers_needed,
        }


@dataclass(frozen=True, slots=True)
class AllocationWarning:
    code: WarningCode
    kommunekode: Kommunekode
    maalgruppe: Maalgruppe | None  # None: the warning is about the whole municipality
    shortfall: float  # expected answers missing; 0.0 for the sample-size codes
    message: str


def inclusion_probability(population: int, sample: int) -> float:
    """π_h = n_h / N_h: the chance that a unit of the stratum is drawn (0 for an empty stratum)."""
    return sample / population if population else 0.0


def design_weight(population: int, sample: int) -> float:
    """w_h = N_h / n_h: how many citizens a drawn unit stands for (0 where nobody is drawn).

    The one definition of the design weight: the reference draw (``draw.draw_sample``), the SQL
    draw (``draw_sql.StrataArrays``, which hands PostgreSQL these floats), the sample.drawn
    persons and the draw endpoint all take it from here. N/n rather than 1/(n/N): one rounding
    step, so that Σ w = N_h as exactly as floats allow."""
    return population / sample if sample else 0.0


@dataclass(frozen=True, slots=True)
class StratumAllocation:
    kommunekode: Kommunekode
    maalgruppe: Maalgruppe
    population: int  # N_h
    sample: int  # n_h
    response_rate: float  # r_h
    overridden: bool = False  # set by an operator through adjust()

    @property
    def key(self) -> StratumKey:
        return (self.kommunekode, self.maalgruppe)

    @property
    def expected_answers(self) -> float:
        return self.sample * self.response_rate

    @property
    def inclusion_probability(self) -> float:
        return inclusion_probability(self.population, self.sample)

    @property
    def design_weight(self) -> float:
        return design_weight(self.population, self.sample)


@dataclass(frozen=True, slots=True)
class MunicipalityAllocation:
    kommunekode: Kommunekode
    population: int
    target_sample: int  # from the size curve, before caps and the 200 rule
    sample: int
    expected_answers: float
    max_expected_answers: float  # if the whole population were taken
    shortfall: float  # expected answers below min_expected_answers (0.0 if met)
    warnings: tuple[AllocationWarning, ...]
    cap_conflict: CapConflict | None = None  # the operator's cap overrode an answer rule


@dataclass(frozen=True)
class Allocation:
    rules: AllocationRules
    strata: Mapping[StratumKey, StratumAllocation]  # sorted by key
    municipalities: Mapping[Kommunekode, MunicipalityAllocation]  # sorted by code

    @property
    def total_sample(self) -> int:
        return sum(s.sample for s in self.strata.values())

    @property
    def warnings(self) -> tuple[AllocationWarning, ...]:
        return tuple(w for m in self.municipalities.values() for w in m.warnings)

    def sample_sizes(self) -> dict[StratumKey, int]:
        return {k: s.sample for k, s in self.strata.items()}


def allocate(
    frame_counts: Mapping[StratumKey, int], rules: AllocationRules | None = None
) -> Allocation:
    """Allocate the sample for one round from the population count of each stratum
    (after exclusions). Strata with N_h = 0 are kept, with n_h = 0."""
    rules = rules or AllocationRules()
    by_kommune: dict[Kommunekode, list[tuple[Maalgruppe, int]]] = {}
    for key, count in frame_counts.items():
        kode, gruppe = _check_key(key)
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise AllocationError(f"population of {key} must be an int >= 0, got {count!r}")
        by_kommune.setdefault(kode, []).append((gruppe, count))

    strata: dict[StratumKey, StratumAllocation] = {}
    municipalities: dict[Kommunekode, MunicipalityAllocation] = {}
    for kode in sorted(by_kommune):
        groups = sorted(by_kommune[kode])
        rows, target, conflict = _allocate_municipality(kode, groups, rules)
        strata.update((s.key, s) for s in rows)
        municipalities[kode] = _summarise(kode, target, rows, rules, conflict)
    return Allocation(rules=rules, strata=strata, municipalities=municipalities)


def adjust(allocation: Allocation, overrides: Mapping[StratumKey, int]) -> Allocation:
    """Apply an operator's manual sample sizes and re-validate.

    Hard rules (known stratum, whole number, 0 ≤ n_h ≤ N_h) raise AllocationError with
    every problem listed; soft rules (200 answers, per-stratum minimum, min/max sample)
    are recomputed as warnings, because an operator may knowingly accept them.
    """
    problems: list[str] = []
    for key, n in overrides.items():
        current = allocation.strata.get(key)
        if current is None:
            problems.append(f"{key}: unknown stratum")
        elif isinstance(n, bool) or not isinstance(n, int):
            problems.append(f"{key}: sample must be a whole number, got {n!r}")
        elif not 0 <= n <= current.population:
            problems.append(f"{key}: sample {n} outside 0..{current.population} (N_h)")
    if problems:
        raise AllocationError("invalid override: " + "; ".join(problems))

    strata = {
        key: replace(s, sample=overrides[key], overridden=True) if key in overrides else s
        for key, s in allocation.strata.items()
    }
    municipalities = {}
    for kode, old in allocation.municipalities.items():
        rows = [s for s in strata.values() if s.kommunekode == kode]
        municipalities[kode] = _summarise(kode, old.target_sample, rows, allocation.rules, old.cap_conflict)
    return Allocation(rules=allocation.rules, strata=strata, municipalities=municipalities)


# --- internals -------------------------------------------------------------------------


def _check_key(key: object) -> StratumKey:
    if (
        not isinstance(key, tuple)
        or len(key) != 2
        or not all(isinstance(part, str) and part for part in key)
    ):
        raise AllocationError(f"stratum key must be (kommunekode, maalgruppe), got {key!r}")
    return key  # type: ignore[return-value]


def _allocate_municipality(
    kode: Kommunekode, groups: Sequence[tuple[Maalgruppe, int]], rules: AllocationRules
) -> tuple[list[StratumAllocation], int, CapConflict | None]:
    rates = [rules.response_rate(g) for g, _ in groups]
    upper = [n for _, n in groups]
    population = sum(upper)
    alpha = rules.allocation_power
    weights = [n**alpha / r if n > 0 else 0.0 for n, r in zip(upper, rates)]
    per_stratum = rules.min_expected_answers_per_stratum
    lower = (
        [min(n, _units_needed(per_stratum, r)) for n, r in zip(upper, rates)]
        if per_stratum
        else [0] * len(groups)
    )

    def spread(total: int, floors: Sequence[int] = lower) -> list[int]:
        return _largest_remainder(
            _box_proportional(total, weights, floors, upper), total, floors, upper
        )

    def answers(sizes: Iterable[int]) -> float:
        return math.fsum(n * r for n, r in zip(sizes, rates))

    target = rules.target_sample(population)
    start = min(population, max(target, sum(lower)))
    sizes = spread(start)
    needed = rules.min_expected_answers
    if answers(sizes) < needed:
        if answers(upper) >= needed:
            # Bisection keeps `hi` feasible (spread(population) is everyone), so the
            # result always meets the rule even if rounding made answers(total) not
            # strictly monotone in the total.
            lo, hi = start, population
            while hi - lo > 1:
                mid = (lo + hi) // 2
                if answers(spread(mid)) >= needed:
                    hi = mid
                else:
                    lo = mid
            sizes = spread(hi)
        else:
            sizes = list(upper)  # best possible; _summarise reports the shortfall

    conflict = None
    cap = rules.max_sample
    if rules.max_sample_is_cap and sum(sizes) > cap:
        # Only an answer rule raises a total above the (clamped) target: the operator's cap
        # wins over it, with the same shape (the per-stratum floors too, if they alone exceed it).
        asked = sum(sizes)
        rule = "min_expected_answers_per_stratum" if sum(lower) > cap or answers(spread(cap, [0] * len(groups))) >= needed else "min_expected_answers"
        sizes = spread(cap, lower if sum(lower) <= cap else [0] * len(groups))
        conflict = CapConflict(
            rule=rule,
            cap=cap,
            sample_needed=asked,
            expected_answers=answers(sizes),
            expected_answers_needed=needed if rule == "min_expected_answers" else float(per_stratum or 0.0),
        )

    rows = [
        StratumAllocation(kode, g, n_pop, n, r) for (g, n_pop), n, r in zip(groups, sizes, rates)
    ]
    return rows, target, conflict


def _summarise(
    kode: Kommunekode,
    target: int,
    rows: Sequence[StratumAllocation],
    rules: AllocationRules,
    conflict: CapConflict | None = None,
) -> MunicipalityAllocation:
    population = sum(s.population for s in rows)
    sample = sum(s.sample for s in rows)
    # fsum is correctly rounded, so the same citizens give the same float whatever the
    # order: the 200 check and the reported shortfall are exactly reproducible.
    expected = math.fsum(s.sample * s.response_rate for s in rows)
    best = math.fsum(s.population * s.response_rate for s in rows)
    needed = rules.min_expected_answers
    shortfall = needed - expected if expected < needed else 0.0
    warnings: list[AllocationWarning] = []

    def warn(code: WarningCode, gruppe: Maalgruppe | None, missing: float, msg: str) -> None:
        warnings.append(AllocationWarning(code, kode, gruppe, missing, msg))

    if expected < needed:
        if best < needed:
            warn(
                WarningCode.MIN_ANSWERS_UNREACHABLE,
                None,
                shortfall,
                f"{expected:.1f} expected answers, {needed:g} required; even the whole "
                f"population ({population}) gives only {best:.1f}",
            )
        else:
            warn(
                WarningCode.MIN_ANSWERS_NOT_MET,
                None,
                shortfall,
                f"{expected:.1f} expected answers, {needed:g} required and reachable",
            )
    per_stratum = rules.min_expected_answers_per_stratum
    if per_stratum:
        for s in rows:
            if s.population and s.expected_answers < per_stratum:
                reachable = s.population * s.response_rate >= per_stratum
                warn(
                    WarningCode.STRATUM_MIN_ANSWERS_NOT_MET
                    if reachable
                    else WarningCode.STRATUM_MIN_ANSWERS_UNREACHABLE,
                    s.maalgruppe,
                    per_stratum - s.expected_answers,
                    f"{s.expected_answers:.1f} expected answers in {s.maalgruppe}, "
                    f"{per_stratum:g} wanted (N_h = {s.population})",
                )
    if sample > rules.max_sample:
        warn(
            WarningCode.ABOVE_MAX_SAMPLE,
            None,
            0.0,
            f"sample {sample} above max {rules.max_sample} to reach the answer minimum"
            if not any(s.overridden for s in rows)
            else f"sample {sample} above max {rules.max_sample}",
        )
    if conflict is not None:
        warn(
            WarningCode.CAPPED_BY_MAX_SAMPLE,
            None,
            max(0.0, conflict.expected_answers_needed - conflict.expected_answers),
            f"the operator's max_sample {conflict.cap} overrides {conflict.rule} ({conflict.expected_answers_needed:g} "
            f"expected answers, which needs a sample of {conflict.sample_needed}): {conflict.expected_answers:.1f} "
            "expected answers",
        )
    if sample < rules.min_sample:
        warn(
            WarningCode.BELOW_MIN_SAMPLE,
            None,
            0.0,
            f"sample {sample} below min {rules.min_sample} (population {population})",
        )
    return MunicipalityAllocation(
        kommunekode=kode,
        population=population,
        target_sample=target,
        sample=sample,
        expected_answers=expected,
        max_expected_answers=best,
        shortfall=shortfall,
        warnings=tuple(warnings),
        cap_conflict=conflict,
    )


def _units_needed(answers: float, rate: float) -> int:
    """Smallest n with n·rate ≥ answers, checked in the same float arithmetic that the
    warnings use (a plain ceil(answers / rate) can be off by one either way)."""
    n = math.ceil(answers / rate)
    while n > 0 and (n - 1) * rate >= answers:
        n -= 1
    while n * rate < answers:
        n += 1
    return n


def _box_proportional(
    total: int, weights: Sequence[float], lower: Sequence[int], upper: Sequence[int]
) -> list[float]:
    """Continuous x_h = clamp(λ·w_h, lower_h, upper_h) with Σ x_h = total.

    Σ x_h is piecewise linear and non-decreasing in λ, with kinks where a stratum leaves
    its floor (λ = lower/w) or hits its cap (λ = upper/w); find the segment holding
    `total` and solve the linear piece exactly instead of iterating.
    """
    if total <= sum(lower):
        return [float(x) for x in lower]
    if total >= sum(upper):
        return [float(x) for x in upper]

    def clamp(lam: float) -> list[float]:
        return [min(u, max(lo, lam * w)) for w, lo, u in zip(weights, lower, upper)]

    kinks = sorted({b for w, lo, u in zip(weights, lower, upper) if w > 0 for b in (lo / w, u / w)})
    prev, g_prev = 0.0, float(sum(lower))
    for kink in kinks:
        g = math.fsum(clamp(kink))
        if g >= total:
            lam = prev + (total - g_prev) * (kink - prev) / (g - g_prev)
            return clamp(lam)
        prev, g_prev = kink, g
    return [float(x) for x in upper]  # unreachable: the last kink caps everything


def _largest_remainder(
    quotas: Sequence[float], total: int, lower: Sequence[int], upper: Sequence[int]
) -> list[int]:
    """Round quotas to integers summing exactly to `total` (Hamilton's method), staying
    within [lower, upper]. Ties go to the earlier stratum, so the result is reproducible."""
    if not sum(lower) <= total <= sum(upper):
        raise AllocationError(f"total {total} outside {sum(lower)}..{sum(upper)}")
    sizes = [min(u, max(lo, math.floor(q))) for q, lo, u in zip(quotas, lower, upper)]
    remainders = [q - math.floor(q) for q in quotas]
    order: Callable[[int], tuple[float, int]] = lambda i: (-remainders[i], i)  # noqa: E731
    missing = total - sum(sizes)
    # A loop, not one pass: float error in the quotas can leave a unit or two over after
    # one round of largest remainders; each pass moves at least one unit or stops.
    while missing > 0:
        room = sorted((i for i in range(len(sizes)) if sizes[i] < upper[i]), key=order)
        for i in room[:missing]:
            sizes[i] += 1
        missing = total - sum(sizes)
    while missing < 0:
        spare = sorted(
            (i for i in range(len(sizes)) if sizes[i] > lower[i]), key=order, reverse=True
        )
        for i in spare[:-missing]:
            sizes[i] -= 1
        missing = total - sum(sizes)
    return sizes
