"""Cell indicators on the agreement scale."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.analytics.domain.estimators import StratifiedDesign
from services.analytics.domain.indicators import (
    AGREEMENT_SCALE,
    CODES,
    PUBLISHED_INDICATORS,
    SCORES,
    LikertScale,
    cell_indicators,
)
from services.analytics.domain.count_estimates import StratumInfo, cell_estimates, design_strata, estimate_cells


def test_agreement_scale_scores_meget_enig_highest() -> None:
    assert AGREEMENT_SCALE.score("Meget enig") == 5
    assert AGREEMENT_SCALE.score("Enig") == 4
    assert AGREEMENT_SCALE.score("Hverken enig eller uenig") == 3
    assert AGREEMENT_SCALE.score("Uenig") == 2
    assert AGREEMENT_SCALE.score("Meget uenig") == 1
    assert AGREEMENT_SCALE.score("Ved ikke") is None
    assert AGREEMENT_SCALE.categories[-1] == "Ved ikke"
    assert [AGREEMENT_SCALE.is_top_box(s) for s in range(1, 6)] == [False, False, False, True, True]
    with pytest.raises(ValueError):
        AGREEMENT_SCALE.score("Meget tilfreds")
    with pytest.raises(ValueError):
        LikertScale(("a", "b"), top_box=2)


def test_indicators_of_a_cell() -> None:
    # Stratum A (w = 10): Meget enig, Enig, Ved ikke, no answer
    # Stratum B (w = 2):  Uenig, Meget uenig, Enig, Meget enig
    d = StratifiedDesign(["A"] * 4 + ["B"] * 4, population_sizes={"A": 40, "B": 8})
    answers = ["Meget enig", "Enig", "Ved ikke", None, "Uenig", "Meget uenig", "Enig", "Meget enig"]
    ind = cell_indicators(d, answers)
    assert (ind.n_answers, ind.n_valid, ind.n_dont_know) == (7, 6, 1)

    w = ind.weighted
    # Valid: A 5, 4 (w 10), B 2, 1, 4, 5 (w 2): (90 + 24) / 28
    assert math.isclose(w.mean_score.value, 114 / 28)
    # Top two: A both, B two of four: (20 + 4) / 28
    assert math.isclose(w.top_box_share.value, 24 / 28)
    # "Ved ikke" among all 7 answers: 10 / 38
    assert math.isclose(w.dont_know_share.value, 10 / 38)
    assert math.isclose(sum(e.value for e in w.distribution.values()), 1.0)
    assert list(w.distribution) == list(AGREEMENT_SCALE.categories)
    assert w.distribution["Ved ikke"] == w.dont_know_share

    u = ind.unweighted
    assert math.isclose(u.mean_score.value, (5 + 4 + 2 + 1 + 4 + 5) / 6)
    assert math.isclose(u.top_box_share.value, 4 / 6)
    assert math.isclose(u.dont_know_share.value, 1 / 7)


def test_indicators_of_a_domain_and_of_an_empty_cell() -> None:
    d = StratifiedDesign(["A"] * 4, population_sizes={"A": 40})
    answers = ["Enig", "Ved ikke", "Meget enig", "Uenig"]
    ind = cell_indicators(d, answers, [True, True, False, False])
    assert (ind.n_answers, ind.n_valid) == (2, 1)
    assert ind.weighted.mean_score.value == 4.0

    only_dont_know = cell_indicators(d, answers, [False, True, False, False])
    assert only_dont_know.n_valid == 0
    assert only_dont_know.weighted.mean_score is None
    assert only_dont_know.weighted.top_box_share is None
    assert only_dont_know.weighted.dont_know_share.value == 1.0

    nobody = cell_indicators(d, [None] * 4)
    assert nobody.n_answers == 0 and nobody.weighted.distribution == {}
    assert nobody.weighted.dont_know_share is None


def test_scale_from_stored_answer_codes() -> None:
    # The questionnaire stores codes with scores; "ved_ikke" has none.
    codes = {
        "meget_enig": 5, "enig": 4, "hverken_enig_eller_uenig": 3,
        "uenig": 2, "meget_uenig": 1, "ved_ikke": None,
    }
    scale = LikertScale.from_scores(codes)
    assert scale.labels == ("meget_uenig", "uenig", "hverken_enig_eller_uenig", "enig", "meget_enig")
    assert scale.dont_know == "ved_ikke"
    assert all(scale.score(c) == s for c, s in codes.items())
    d = StratifiedDesign(["A"] * 3, population_sizes={"A": 9})
    ind = cell_indicators(d, ["enig", "ved_ikke", "meget_uenig"], scale=scale)
    assert ind.weighted.mean_score.value == 2.5
    with pytest.raises(ValueError):
        LikertScale.from_scores({"a": 1, "b": 3})
    with pytest.raises(ValueError):
        LikertScale.from_scores({"a": 1, "b": 2, "x": None, "y": None})


# -- the published indicators' definitions (indicators.PUBLISHED_INDICATORS) -------------------------

_COUNTS = st.fixed_dictionaries({code: st.integers(0, 40) for code in ("1", "2", "3", "4", "5", "dk")})


@settings(max_examples=60, deadline=None)
@given(strata=st.lists(_COUNTS, min_size=1, max_size=4))
def test_published_indicators_are_the_definitions(strata) -> None:
    """Every path that publishes an indicator (one cell, many cells at once, calibrated) reads its
    definition from indicators.PUBLISHED_INDICATORS; this holds the definitions themselves to the
    rule written out by hand: mean of the scores 1..5, top-two share of scores 4 and 5 among the
    scale answers, "Ved ikke" and each score's share among every answer."""
    by_stratum = {f"h{i}": counts for i, counts in enumerate(strata)}
    design = design_strata({h: StratumInfo("101", h, 1, None) for h in by_stratum})  # weight 1: plain ratios
    merged = {code: sum(c[code] for c in strata) for code in CODES}
    valid = sum(merged[s] for s in SCORES)
    answered = valid + merged["dk"]
    expected = {
        "mean": sum(int(s) * merged[s] for s in SCORES) / valid if valid else None,
        "top2_share": (merged["4"] + merged["5"]) / valid if valid else None,
        "dont_know_share": merged["dk"] / answered if answered else None,
        **{f"share_{s}": merged[s] / answered if answered else None for s in SCORES},
    }
    one_cell = cell_estimates(by_stratum, design, 0)
    (many_cells,) = estimate_cells([by_stratum], design)
    for name, value in expected.items():
        for got in (one_cell.weighted[name], one_cell.unweighted[name]):
            assert (got is None) if value is None else math.isclose(got.value, value, abs_tol=1e-12), name
        for column in (name, f"{name}_unweighted"):
            got = many_cells[column]
            assert (got is None) if value is None else math.isclose(got, value, abs_tol=1e-12), column


def test_top_two_is_the_agreement_scales_top_box() -> None:
    top2 = PUBLISHED_INDICATORS["top2_share"]
    assert [v for code, v in zip(CODES, top2.values) if code in SCORES] == [
        float(AGREEMENT_SCALE.is_top_box(int(s))) for s in SCORES
    ] == [0.0, 0.0, 0.0, 1.0, 1.0]
    assert dict(zip(CODES, top2.in_base))["dk"] is False  # "Ved ikke" is outside the top-two base
