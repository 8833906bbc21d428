"""Estimators on hand-computed cases (exact rationals) and general properties."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.analytics.domain.estimators import (
    CalibrationError,
    EmptyDomainError,
    LonelyStratumError,
    Margin,
    StratifiedDesign,
    normal_quantile,
    post_stratify,
    proportion_interval,
    rake,
)

Z95 = 1.959963984540054  # R: qnorm(0.975)


def close(actual: float, expected: Fraction | float) -> bool:
    return math.isclose(actual, float(expected), rel_tol=1e-13, abs_tol=1e-15)


# Two strata, three units each:
#   A: N=30, n=3, w=10, y = 1, 2, 3
#   B: N=12, n=3, w=4,  y = 4, 5, 5
STRATA = ["A"] * 3 + ["B"] * 3
POP = {"A": 30, "B": 12}
Y = [1, 2, 3, 4, 5, 5]


def small_design(lonely: str = "adjust") -> StratifiedDesign:
    return StratifiedDesign(STRATA, population_sizes=POP, lonely=lonely)  # type: ignore[arg-type]


def test_weights_default_to_population_over_sample_size() -> None:
    d = small_design()
    assert d.weights == (10.0, 10.0, 10.0, 4.0, 4.0, 4.0)
    assert d.stratum_sizes == {"A": 3, "B": 3}
    assert d.degrees_of_freedom == 4


def test_mean_two_strata_by_hand() -> None:
    # ybar = (10*6 + 4*14) / 42 = 58/21.
    # z_i = w_i (y_i - 58/21) / 42
    #   A: (-185, -80, 25)/441, stratum mean -80/441, squares sum 50/441,
    #      times (1 - 3/30) * 3/2 = 27/20  ->  15/98
    #   B: (52, 94, 94)/441, stratum mean 80/441, squares sum 8/1323,
    #      times (1 - 3/12) * 3/2 = 9/8    ->  1/147
    # V = 15/98 + 1/147 = 47/294
    e = small_design().mean(Y)
    assert close(e.value, Fraction(58, 21))
    assert close(e.variance, Fraction(47, 294))
    assert close(e.se, math.sqrt(47 / 294))
    assert close(e.ci_low, 58 / 21 - Z95 * math.sqrt(47 / 294))
    assert close(e.ci_high, 58 / 21 + Z95 * math.sqrt(47 / 294))
    assert e.n == 6 and e.weighted_n == 42.0 and e.level == 0.95


def test_proportion_two_strata_by_hand() -> None:
    # Share with y >= 3: A (0, 0, 1), B (1, 1, 1): p = (10 + 12)/42 = 11/21.
    # A: z = (10/42)(-11, -11, 10)/21, deviations (10/42)(-7, -7, 14)/21,
    #    squares sum 50/1323, times 27/20 -> 5/98. B is constant -> 0.
    e = small_design().proportion([y >= 3 for y in Y])
    assert close(e.value, Fraction(11, 21))
    assert close(e.variance, Fraction(5, 98))


def test_domain_cutting_across_strata_by_hand() -> None:
    # Domain: A1, A3, B2. sum w d = 24, sum w d y = 60, ybar_D = 5/2.
    # A: z = (-5/8, 0, 5/24) (the unit outside the domain keeps its 0),
    #    stratum mean -5/36, squares sum 1950/5184, times 27/20 -> 65/128
    # B: z = (0, 5/12, 0), mean 5/36, squares sum 25/216, times 9/8 -> 25/192
    # V = 65/128 + 25/192 = 245/384
    e = small_design().mean(Y, [True, False, True, False, True, False])
    assert close(e.value, Fraction(5, 2))
    assert close(e.variance, Fraction(245, 384))
    assert e.n == 3 and e.weighted_n == 24.0


def test_missing_values_are_a_domain_not_a_smaller_sample() -> None:
    # None (no answer / "Ved ikke") must give exactly the domain estimate.
    y = [1, None, 3, None, 5, None]
    by_none = small_design().mean(y)
    by_domain = small_design().mean([1, 0, 3, 0, 5, 0], [v is not None for v in y])
    assert by_none == by_domain
    assert close(by_none.variance, Fraction(245, 384))


def test_unweighted_is_plain_mean_with_s_over_root_n() -> None:
    # mean 10/3, s^2 = 8/3, SE^2 = s^2/n = 4/9.
    e = small_design().unweighted().mean(Y)
    assert close(e.value, Fraction(10, 3))
    assert close(e.se, Fraction(2, 3))
    assert e.weighted_n == 6.0


def test_lonely_stratum_adjust_by_hand() -> None:
    # A as before plus C: N=5, n=1, w=5, y=4. ybar = 80/35 = 16/7.
    # A: z = (2/7)(y - 16/7), deviations (2/7)(-1, 0, 1), 8/49 * 27/20 = 54/245
    # C: z = 5 (4 - 16/7)/35 = 12/49, centred at 0: (1 - 1/5) (12/49)^2 = 576/12005
    d = StratifiedDesign(["A"] * 3 + ["C"], population_sizes={"A": 30, "C": 5})
    e = d.mean([1, 2, 3, 4])
    assert close(e.value, Fraction(16, 7))
    assert close(e.variance, Fraction(54, 245) + Fraction(576, 12005))


def test_lonely_stratum_fail_policy_raises_like_r_default() -> None:
    d = StratifiedDesign(["A"] * 3 + ["C"], population_sizes={"A": 30, "C": 5}, lonely="fail")
    with pytest.raises(LonelyStratumError):
        d.mean([1, 2, 3, 4])
    # As in R, the lonely stratum does not matter when its unit is outside
    # the domain (here: did not answer).
    e = d.mean([1, 2, 3, None])
    assert close(e.value, 2)


def test_fully_enumerated_stratum_has_no_variance() -> None:
    # B is a census (n = N): only A contributes. A lonely census stratum is
    # no error even under "fail".
    d = StratifiedDesign(STRATA, population_sizes={"A": 30, "B": 3})
    e = d.mean(Y)
    assert close(e.value, Fraction(10 * 6 + 1 * 14, 33))
    only_a = StratifiedDesign(["A"] * 3 + ["C"], population_sizes={"A": 30, "C": 1}, lonely="fail")
    only_a.mean([1, 2, 3, 4])  # does not raise


def test_no_fpc_without_population_sizes() -> None:
    # Same weights, no fpc: each stratum's part is divided by (1 - f_h).
    d = StratifiedDesign(STRATA, weights=[10] * 3 + [4] * 3)
    e = d.mean(Y)
    assert close(e.variance, Fraction(15, 98) / Fraction(9, 10) + Fraction(1, 147) / Fraction(3, 4))


def test_confidence_level_and_quantile() -> None:
    assert normal_quantile(0.95) == pytest.approx(Z95, abs=1e-15)
    e = small_design().mean(Y, level=0.90)
    q = 1.6448536269514722  # R: qnorm(0.95)
    assert close(e.ci_high - e.value, q * e.se)
    with pytest.raises(ValueError):
        normal_quantile(1.0)


def test_empty_domain_and_bad_input() -> None:
    d = small_design()
    with pytest.raises(EmptyDomainError):
        d.mean([None] * 6)
    with pytest.raises(EmptyDomainError):
        d.mean(Y, [False] * 6)
    with pytest.raises(ValueError):
        d.mean(Y[:5])
    with pytest.raises(ValueError):
        StratifiedDesign(STRATA)  # neither weights nor population sizes
    with pytest.raises(ValueError):
        StratifiedDesign(STRATA, population_sizes={"A": 2, "B": 12})  # N < n
    with pytest.raises(KeyError):
        StratifiedDesign(STRATA, population_sizes={"A": 30})
    with pytest.raises(ValueError):
        StratifiedDesign(STRATA, weights=[1, 1, 1, 1, 1, 0])
    with pytest.raises(ValueError):
        StratifiedDesign(STRATA, population_sizes=POP, lonely="certainty")  # type: ignore[arg-type]


# -- calibration -----------------------------------------------------------------


def test_post_stratifying_on_the_strata_changes_nothing() -> None:
    # The weights already hit the stratum totals, and the GREG residuals on
    # stratum dummies are the within-stratum deviations the variance uses.
    d = small_design()
    ps = post_stratify(d, STRATA, POP)
    for dom in (None, [True, False, True, False, True, False]):
        a, b = d.mean(Y, dom), ps.mean(Y, dom)
        assert math.isclose(a.value, b.value, rel_tol=1e-12)
        assert math.isclose(a.se, b.se, rel_tol=1e-9)


def test_post_stratification_by_hand() -> None:
    # Post-strata g = (x, x, y, x, y, y) with totals x: 20, y: 22.
    # Weighted counts before: x 10+10+4 = 24, y 10+4+4 = 18.
    # Factors 20/24 and 22/18, so the weights hit the totals exactly.
    d = small_design()
    g = ["x", "x", "y", "x", "y", "y"]
    ps = post_stratify(d, g, {"x": 20, "y": 22})
    expected_w = [10 * 20 / 24, 10 * 20 / 24, 10 * 22 / 18, 4 * 20 / 24, 4 * 22 / 18, 4 * 22 / 18]
    assert all(math.isclose(a, b, rel_tol=1e-13) for a, b in zip(ps.weights, expected_w))
    e = ps.mean(Y)
    assert close(e.value, sum(w * y for w, y in zip(expected_w, Y)) / 42)
    # Variance: residuals v - (w0-weighted mean of v in the post-stratum),
    # times the new weights, into the stratified formula.
    ybar = e.value
    v = [(y - ybar) / 42 for y in Y]
    w0 = d.weights
    means = {
        c: sum(w0[i] * v[i] for i in range(6) if g[i] == c) / sum(w0[i] for i in range(6) if g[i] == c)
        for c in "xy"
    }
    z = [expected_w[i] * (v[i] - means[g[i]]) for i in range(6)]

    def part(zs: list[float], f: float) -> float:
        m = sum(zs) / 3
        return f * 1.5 * sum((x - m) ** 2 for x in zs)

    assert math.isclose(e.variance, part(z[:3], 0.9) + part(z[3:], 0.75), rel_tol=1e-10)


def test_raking_reaches_every_margin() -> None:
    d = small_design()
    gender = ["K", "M", "K", "M", "K", "M"]
    age = ["u", "u", "o", "o", "u", "o"]
    raked = rake(d, [Margin(gender, {"K": 21, "M": 21}), Margin(age, {"u": 25, "o": 17})])
    for labels, totals in ((gender, {"K": 21, "M": 21}), (age, {"u": 25, "o": 17})):
        for c, t in totals.items():
            got = sum(w for w, lab in zip(raked.weights, labels) if lab == c)
            assert math.isclose(got, t, rel_tol=1e-11)
    assert raked.is_calibrated and not d.is_calibrated


def test_raking_rejects_impossible_targets() -> None:
    d = small_design()
    g = ["x"] * 6
    with pytest.raises(CalibrationError):
        rake(d, [Margin(g, {"x": 40, "y": 2})])  # y has no sampled unit
    with pytest.raises(CalibrationError):
        rake(d, [Margin(["a", "b"] * 3, {"a": 1})])  # b has no total
    with pytest.raises(CalibrationError):
        rake(d, [Margin(g, {"x": 42}), Margin(["a", "b"] * 3, {"a": 1, "b": 2})])  # sizes differ
    with pytest.raises(CalibrationError):
        rake(post_stratify(d, g, {"x": 42}), [Margin(g, {"x": 42})])


# -- properties --------------------------------------------------------------------

units = st.lists(
    st.tuples(
        st.sampled_from(["a", "b", "c"]),
        st.one_of(st.none(), st.integers(1, 5)),
        st.booleans(),
    ),
    min_size=2,
    max_size=30,
)


@settings(max_examples=150, deadline=None)
@given(units, st.integers(0, 40))
def test_estimator_properties(rows, extra_population) -> None:
    strata = [r[0] for r in rows]
    y = [r[1] for r in rows]
    dom = [r[2] for r in rows]
    sizes = {h: strata.count(h) for h in set(strata)}
    pop = {h: n + extra_population + (n % 3) for h, n in sizes.items()}
    d = StratifiedDesign(strata, population_sizes=pop)
    valid = [v for v, inside in zip(y, dom) if v is not None and inside]
    if not valid:
        with pytest.raises(EmptyDomainError):
            d.mean(y, dom)
        return
    e = d.mean(y, dom)
    assert min(valid) - 1e-12 <= e.value <= max(valid) + 1e-12
    assert e.se >= 0 and e.ci_low <= e.value <= e.ci_high
    assert e.n == len(valid)
    # A share and its complement have the same uncertainty.
    p = d.proportion([None if v is None else v >= 4 for v in y], dom)
    q = d.proportion([None if v is None else v < 4 for v in y], dom)
    assert math.isclose(p.value + q.value, 1.0, rel_tol=1e-12)
    assert math.isclose(p.se, q.se, rel_tol=1e-9, abs_tol=1e-12)
    # Scaling all weights leaves a ratio estimator and its SE unchanged.
    scaled = StratifiedDesign(strata, [3 * w for w in d.weights], pop)
    s = scaled.mean(y, dom)
    assert math.isclose(s.value, e.value, rel_tol=1e-12)
    assert math.isclose(s.se, e.se, rel_tol=1e-9, abs_tol=1e-12)


@given(st.floats(0.0, 1.0), st.floats(0.0, 0.5), st.integers(1, 5000))
def test_a_proportions_interval_stays_within_0_and_1_around_the_estimate(p, se, n):
    """The logit interval (R's svyciprop "logit"), or the exact one at 0 and 1: inside [0, 1],
    containing the estimate, and wider for a larger standard error."""
    low, high = proportion_interval(p, se, n)
    assert 0.0 <= low <= high <= 1.0
    assert low <= p + 1e-12 and p - 1e-12 <= high
    if 0.0 < p < 1.0:
        wider = proportion_interval(p, se * 2 + 1e-3, n)
        assert wider[0] <= low + 1e-12 and high - 1e-12 <= wider[1]
    else:
        exact = (0.0, 1.0 - 0.025 ** (1 / n)) if p == 0.0 else (0.025 ** (1 / n), 1.0)
        assert all(math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-15) for a, b in zip((low, high), exact))
