"""Fieldwork releases publish who answered, never what (scope "rates"): no answer content, the
respondent counts' static protection against every earlier release (counts only grow) and no
growth rule; the baseline of the releases that published answers is carried through them.

The reader here is an integer program written for this test (not the audit's): unknowns for
every release's interior cells (municipality x target group, municipality x arm), each release's
published counts as equations, the invited as limits, and every count only growing from one
release to the next."""

from __future__ import annotations

import random
from collections import Counter

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.optimize import Bounds, LinearConstraint, milp

from services.analytics.domain.publication import (
    RESPONDENTS,
    AnswerCount,
    Baseline,
    RateCount,
    StratumInfo,
    build_publication,
)

T = 5
KOMMUNER = ("101", "147", "751")
GROUPS = ("a", "b", "c")
ARMS = ("x", "y")


def people_of(rng: random.Random) -> list[tuple]:
    """(municipality, target group, arm, gender, answer) per invited citizen, answered or not:
    small strata, so many cells of 1-9."""
    out = []
    for k in KOMMUNER:
        for g in GROUPS:
            for _ in range(rng.choice([1, 3, 5, 8, 12, 20])):
                out.append((k, g, rng.choice(ARMS), rng.choice("KM"), rng.choice([1, 2, 3, 4, 5, "dk"])))
    return out


def inputs(invited: list[tuple], answered: list[tuple]):
    """The builder's inputs: strata with their respondents, answer tallies, rate tallies."""
    n = Counter((k, g) for k, g, *_ in answered)
    strata = {f"{k}:{g}": StratumInfo(k, g, n[(k, g)], 4 * sum(1 for p in invited if p[:2] == (k, g)) + 4)
              for k in KOMMUNER for g in GROUPS}
    tallies = Counter()
    for k, g, _, gender, answer in answered:
        code = "dk" if answer == "dk" else str(answer)
        for dim, lvl in (("total", "total"), ("gender", gender)):
            tallies[(f"{k}:{g}", dim, lvl, "q1", code)] += 1
            tallies[(f"{k}:{g}", dim, lvl, RESPONDENTS, "1")] += 1
    inv = Counter((k, g, a) for k, g, a, *_ in invited)
    ans = Counter((k, g, a) for k, g, a, *_ in answered)
    rates = [RateCount(f"{k}:{g}", k, g, a, inv[(k, g, a)], ans[(k, g, a)]) for k in KOMMUNER for g in GROUPS for a in ARMS]
    return strata, [AnswerCount(*key, v) for key, v in tallies.items()], rates


def release(invited, answered, baseline, scope):
    return build_publication("r", "kl", *inputs(invited, answered), min_count=T, baseline=baseline, scope=scope)


def rate_view(pub) -> dict:
    """(dimension, municipality, level) -> published answers (None: hidden), and the invited."""
    return {(r["dimension"], r["kommunekode"], r["level"]): (r["answers"], r["invited"]) for r in pub.rate_rows}


def truth_of(answered) -> dict:
    out = Counter()
    for k, g, a, *_ in answered:
        for dim, lvl in (("maalgruppe", g), ("arm", a)):
            for kk, ll in ((k, lvl), (k, "total"), ("national", lvl), ("national", "total")):
                out[(dim, kk, ll)] += 1
    return out


def reader(views: list[dict]) -> dict:
    """[min, max] of every hidden count of the latest release over the whole-number solutions
    of everything the releases published, counts only growing from release to release."""
    interior = [("maalgruppe", k, g) for k in KOMMUNER for g in GROUPS] + [("arm", k, a) for k in KOMMUNER for a in ARMS]
    index = {(r, c): i for i, (r, c) in enumerate((r, c) for r in range(len(views)) for c in interior)}
    n = len(index)

    def expr(r, dim, k, lvl) -> np.ndarray:
        v = np.zeros(n)
        for c in interior:
            if c[0] == dim and (k == "national" or c[1] == k) and (lvl == "total" or c[2] == lvl):
                v[index[(r, c)]] = 1
        return v

    rows, lo, hi = [], [], []
    upper = np.full(n, np.inf)
    for r, view in enumerate(views):
        for k in (*KOMMUNER, "national"):  # the two tables count the same people
            rows.append(expr(r, "maalgruppe", k, "total") - expr(r, "arm", k, "total"))
            lo.append(0)
            hi.append(0)
        for (dim, k, lvl), (answers, invited) in view.items():
            if answers is not None:
                rows.append(expr(r, dim, k, lvl))
                lo.append(answers)
                hi.append(answers)
            if k != "national" and lvl != "total":
                upper[index[(r, (dim, k, lvl))]] = invited
        if r:
            for c in interior:
                v = np.zeros(n)
                v[index[(r, c)]], v[index[(r - 1, c)]] = 1, -1
                rows.append(v)
                lo.append(0)
                hi.append(np.inf)
    constraint = LinearConstraint(np.array(rows), lo, hi)
    out = {}
    r = len(views) - 1
    for (dim, k, lvl), (answers, _) in views[r].items():
        if answers is not None:
            continue
        bounds = []
        for sign in (1, -1):
            # Without presolve: HiGHS's presolve (scipy 1.17) returned a wrong optimum (1 where
            # a whole-number solution with 0 exists) on one of these programs.
            result = milp(sign * expr(r, dim, k, lvl), integrality=np.ones(n), bounds=Bounds(0, upper), constraints=[constraint],
                          options={"presolve": False})
            assert result.status == 0, result.message
            bounds.append(round(sign * result.fun))
        out[(r, dim, k, lvl)] = tuple(bounds)
    return out


def fieldwork(seed: int, steps: int) -> tuple[list, list, list]:
    """A round answered a few citizens at a time with a rates release after each step: the
    releases, the views, and who had answered at each."""
    rng = random.Random(seed)
    invited = people_of(rng)
    order = invited[:]
    rng.shuffle(order)
    upto = len(order) // 2
    baseline, pubs, answered_at = None, [], []
    for step in range(steps):
        upto += 0 if step == 0 else rng.choice([1, 1, 2, 3])
        answered = order[:upto]
        pub = release(invited, answered, baseline, "rates")
        baseline = pub.baseline
        pubs.append(pub)
        answered_at.append(answered)
    return invited, pubs, answered_at


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 10_000))
def test_rates_releases_keep_every_hidden_count_protected_against_all_of_them(seed) -> None:
    """Rates releases a few answers apart: no answer content at all, and a reader holding a
    release and every one before (counts only grow) cannot tell a hidden small count from 0 or
    from 5+, nor pin any other hidden count at a value neither published."""
    invited, pubs, answered_at = fieldwork(seed, 4)
    for pub in pubs:
        assert len(pub.indicator_columns) == 0 and pub.indicator_rows == []
        assert {r["dimension"] for r in pub.rate_rows} == {"maalgruppe", "arm"}
    views = [rate_view(p) for p in pubs]
    for upto in range(1, len(views) + 1):
        assert_protected(views[:upto], answered_at[upto - 1])


def assert_protected(views: list[dict], answered: list) -> None:
    """A reader holding every release in ``views`` (counts only grow through all of them)
    cannot tell a hidden small count of the latest from 0 or from 5+, nor pin any other hidden
    count at a value no release published."""
    shown = {}
    for view in views[:-1]:
        for cell, (answers, _) in view.items():
            if answers is not None:
                shown.setdefault(cell, set()).add(answers)
    r = len(views) - 1
    truth = truth_of(answered)
    for (_, dim, k, lvl), (lo, hi) in reader(views).items():
        x = truth[(dim, k, lvl)]
        invited_here = views[r][(dim, k, lvl)][1]
        if x < T:
            assert lo <= 0 and hi >= min(T, invited_here), ("a small count narrowed", r, dim, k, lvl, x, lo, hi)
        else:
            assert lo < hi or lo in shown.get((dim, k, lvl), set()), ("pinned", r, dim, k, lvl, x, lo)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 10_000))
def test_the_final_after_rates_releases_keeps_every_hidden_count_protected_against_all_of_them(seed) -> None:
    """The default loop's rates releases, then the final (every table, answers per code): a
    reader of the response-rate tables holding every release and the final cannot narrow a
    hidden count of the final (the final is held to the rates releases' equations together,
    not only to each cell's floor)."""
    invited, pubs, answered_at = fieldwork(seed, 3)
    answered = list(answered_at[-1])
    remaining = list(invited)
    for person in answered:
        remaining.remove(person)
    answered += remaining[:1]
    final = release(invited, answered, pubs[-1].baseline, "all")
    assert_protected([rate_view(p) for p in pubs] + [rate_view(final)], answered)


def test_a_rates_release_is_not_held_by_the_growth_rule() -> None:
    """One more answer between two rates releases: the counts it moved by 1 are published in
    both (it tells that someone answered, never what)."""
    rng = random.Random(3)
    invited = [(k, g, rng.choice(ARMS), "K", 3) for k in KOMMUNER for g in GROUPS for _ in range(20)]
    answered = invited[::2]
    first = release(invited, answered, None, "rates")
    second = release(invited, answered + [invited[1]], first.baseline, "rates")
    before, after = rate_view(first), rate_view(second)
    moved = [c for c in after if after[c][0] is not None and before[c][0] is not None and after[c][0] - before[c][0] == 1]
    assert ("maalgruppe", "national", "total") in moved and len(moved) >= 4
    # The same pair as releases with answers: the growth rule hides every moved cell.
    first = release(invited, answered, None, "totals")
    second = release(invited, answered + [invited[1]], first.baseline, "totals")
    before, after = rate_view(first), rate_view(second)
    assert not [c for c in after if after[c][0] is not None and before[c][0] is not None and 0 < after[c][0] - before[c][0] < T]


@pytest.mark.parametrize("seed", range(6))
def test_rates_releases_carry_the_last_release_with_answers(seed) -> None:
    """A release point with answers, rates releases, then the final: the rates releases only
    raise floors; the final is held against the release point by the growth rule (no cell with
    answers moved by 1-4 since it is published), whatever the rates releases showed between."""
    rng = random.Random(seed)
    invited = people_of(rng)
    order = invited[:]
    rng.shuffle(order)
    cut = len(order) * 2 // 3
    point = release(invited, order[:cut], None, "totals")
    baseline = point.baseline
    for extra in (1, 2):
        rates = release(invited, order[: cut + extra], baseline, "rates")
        carried = rates.baseline
        assert (carried.published, carried.published_parts, carried.last) == (point.baseline.published, point.baseline.published_parts, point.baseline.last)
        assert all(carried.floor.get(key, 0) >= v for key, v in baseline.floor.items())
        assert carried.rates and carried.rates[-1] is not carried.last
        assert Baseline.from_json(carried.to_json()) == carried
        baseline = carried
    final = release(invited, order[: cut + 3], baseline, "all")
    assert final.baseline.rates == () and final.baseline.last is not None
    before = {(r["question"], r["dimension"], r["kommunekode"], r["level"]): r for r in point.indicator_rows if not r["suppressed"]}
    for r in final.indicator_rows:
        old = before.get((r["question"], r["dimension"], r["kommunekode"], r["level"]))
        if r["suppressed"] or old is None:
            continue
        for column in ("n_respondents", "n_answers", "n_valid", "n_dont_know"):
            assert not 0 < abs(r[column] - old[column]) < T, (r, column)


def test_the_final_after_rates_releases_on_the_same_data_is_not_emptied_by_them() -> None:
    """Rates releases then a final on the same data: a hidden cell of the final pinned at the
    value a rates release published tells nothing new, so the final is not emptied by them (it
    may hide more than a final alone: what the rates releases proved of the cells they hid
    binds the final's different pattern)."""
    rng = random.Random(11)
    invited = [(k, g, rng.choice(ARMS), rng.choice("KM"), rng.choice([1, 2, 3, 4, 5, "dk"]))
               for k in KOMMUNER for g in GROUPS for _ in range(rng.choice([3, 12, 20, 30]))]
    rng.shuffle(invited)
    answered = invited[: len(invited) * 3 // 4]
    alone = release(invited, answered, None, "all")
    baseline = None
    for _ in range(2):
        baseline = release(invited, answered, baseline, "rates").baseline
    after = release(invited, answered, baseline, "all")
    count = lambda pub: sum(not r["suppressed"] for r in pub.rate_rows)  # noqa: E731
    assert count(alone) > 0 and count(after) > count(alone) // 2
