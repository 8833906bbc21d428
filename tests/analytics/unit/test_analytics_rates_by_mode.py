"""Response rates by answer mode (web, paper, phone) and by language: the respondents of each
municipality split by how they answered, in the same one suppression as every other table.

A mode's or a language's response rate is the share of the municipality's invited who answered
that way (nobody is invited in a mode), so the shares add up to the municipality's rate. The
reader here is an integer program written for this test: unknowns for the hidden cells of the
mode and language tables, the published municipal totals and national cells as equations, the
invited as limits; no hidden count of 1-4 may come out exact."""

from __future__ import annotations

import random
from collections import Counter

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.optimize import Bounds, LinearConstraint, milp

from services.analytics.domain.publication import RESPONDENTS, AnswerCount, RateCount, StratumInfo, build_publication

T = 5
KOMMUNER = ("101", "147", "751", "851")
GROUPS = ("a", "b")
MODES = ("web", "paper", "phone")
LANGUAGES = ("da", "en", "ar")


def inputs(invited: Counter, answered: list[tuple]):
    """``invited``: (municipality, group) -> citizens; ``answered``: (municipality, group, mode, language) per respondent."""
    n = Counter((k, g) for k, g, *_ in answered)
    strata = {f"{k}:{g}": StratumInfo(k, g, n[(k, g)], 3 * invited[(k, g)] + 3) for k in KOMMUNER for g in GROUPS}
    tallies = Counter()
    for k, g, *_ in answered:
        for dim, lvl in (("total", "total"), ("gender", "K")):
            tallies[(f"{k}:{g}", dim, lvl, "q1", "4")] += 1
            tallies[(f"{k}:{g}", dim, lvl, RESPONDENTS, "1")] += 1
    rates = [RateCount(f"{k}:{g}", k, g, "none", invited[(k, g)], 0) for k in KOMMUNER for g in GROUPS]
    how = Counter(answered)
    rates += [RateCount(f"{k}:{g}", k, g, "none", 0, c, mode, lang) for (k, g, mode, lang), c in how.items()]
    return strata, [AnswerCount(*key, v) for key, v in tallies.items()], rates


@st.composite
def rounds(draw):
    rng = random.Random(draw(st.integers(0, 2**32 - 1)))
    invited = Counter({(k, g): rng.choice([2, 6, 15, 30]) for k in KOMMUNER for g in GROUPS})
    answered = []
    for (k, g), n in invited.items():
        for _ in range(rng.randint(0, n)):
            mode = rng.choices(MODES, weights=(6, 2, 1))[0]
            answered.append((k, g, mode, rng.choices(LANGUAGES, weights=(6, 2, 1))[0]))
    return invited, answered


def exact(hidden: list[tuple], equations: list[tuple[dict, int]], bound: dict) -> set[tuple]:
    """The hidden cells whose value the published equations (cell -> coefficient, right-hand side) pin down."""
    index = {cell: i for i, cell in enumerate(hidden)}
    rows, targets = [], []
    for coefficients, total in equations:
        row = np.zeros(len(hidden))
        for cell, coefficient in coefficients.items():
            row[index[cell]] = coefficient
        rows.append(row)
        targets.append(total)
    constraints = [LinearConstraint(np.array(rows), targets, targets)] if rows else []
    bounds = Bounds(np.zeros(len(hidden)), np.array([bound[c] for c in hidden], dtype=float))
    pinned = set()
    for i, cell in enumerate(hidden):
        c = np.zeros(len(hidden))
        c[i] = 1
        low = milp(c, constraints=constraints, bounds=bounds, integrality=np.ones(len(hidden)))
        high = milp(-c, constraints=constraints, bounds=bounds, integrality=np.ones(len(hidden)))
        if low.success and high.success and round(low.fun) == round(-high.fun):
            pinned.add(cell)
    return pinned


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rounds(), st.sampled_from(["all", "rates"]))
def test_rates_by_mode_and_language_add_up_and_hide_small_cells(case, scope):
    invited, answered = case
    pub = build_publication("r", "kl", *inputs(invited, answered), min_count=T, scope=scope)
    rows = {(r["dimension"], r["kommunekode"], r["level"]): r for r in pub.rate_rows}
    invited_of = {k: sum(invited[(k, g)] for g in GROUPS) for k in KOMMUNER} | {"national": sum(invited.values())}
    for dim, position in (("mode", 2), ("language", 3)):
        truth = Counter()
        for person in answered:
            for k in (person[0], "national"):
                truth[(k, person[position])] += 1
                truth[(k, "total")] += 1
        levels = sorted({p[position] for p in answered})
        hidden, equations, bound = [], [], {}
        for k in (*KOMMUNER, "national"):
            for lvl in (*levels, "total"):
                row = rows[(dim, k, lvl)]
                # Every mode's invited are the municipality's; a published count is the true one.
                assert row["invited"] == invited_of[k]
                if row["suppressed"]:
                    assert row["answers"] is None and row["response_rate"] is None
                    hidden.append((k, lvl))
                    bound[(k, lvl)] = invited_of[k]
                else:
                    assert row["answers"] == truth[(k, lvl)]
                    assert row["answers"] == 0 or row["answers"] >= T
                    assert row["response_rate"] == (row["answers"] / invited_of[k] if invited_of[k] else None)
        # The published cells' equations: each municipality over its levels, each level over the
        # municipalities (parts - whole = 0, the published values moved to the right-hand side).
        lines = [([(k, lvl) for lvl in levels], (k, "total")) for k in (*KOMMUNER, "national")]
        lines += [([(k, lvl) for k in KOMMUNER], ("national", lvl)) for lvl in (*levels, "total")]
        for parts, whole in lines:
            coefficients = {c: 1 for c in parts if c in bound} | ({whole: -1} if whole in bound else {})
            if coefficients:
                rhs = -sum(rows[(dim, *c)]["answers"] for c in parts if c not in bound)
                rhs += 0 if whole in bound else rows[(dim, *whole)]["answers"]
                equations.append((coefficients, rhs))
        for cell in exact(hidden, equations, bound) if hidden else ():
            assert truth[cell] == 0 or truth[cell] >= T, f"{dim} cell {cell} = {truth[cell]} is recoverable"
        # The shares of a municipality whose cells are all published add up to its response rate.
        for k in KOMMUNER:
            shown = [rows[(dim, k, lvl)] for lvl in levels]
            if all(not r["suppressed"] for r in shown) and not rows[(dim, k, "total")]["suppressed"] and invited_of[k]:
                assert abs(sum(r["response_rate"] for r in shown) - rows[(dim, k, "total")]["response_rate"]) < 1e-12


def test_a_round_answered_only_on_the_web_in_danish_has_one_level_each():
    invited = Counter({(k, g): 10 for k in KOMMUNER for g in GROUPS})
    answered = [(k, g, "web", "da") for k in KOMMUNER for g in GROUPS for _ in range(6)]
    pub = build_publication("r", "kl", *inputs(invited, answered), min_count=T)
    mode_rows = [r for r in pub.rate_rows if r["dimension"] == "mode"]
    assert {(r["kommunekode"], r["level"]) for r in mode_rows} == {(k, lvl) for k in (*KOMMUNER, "national") for lvl in ("web", "total")}
    assert all(r["answers"] == (12 if r["kommunekode"] != "national" else 48) for r in mode_rows)
    assert all(r["response_rate"] == 0.6 for r in mode_rows)


def test_a_single_phone_answer_in_a_municipality_is_hidden_with_another_cell():
    invited = Counter({(k, g): 20 for k in KOMMUNER for g in GROUPS})
    answered = [(k, g, "web", "da") for k in KOMMUNER for g in GROUPS for _ in range(8)]
    answered.append(("751", "a", "phone", "da"))
    pub = build_publication("r", "kl", *inputs(invited, answered), min_count=T)
    rows = {(r["kommunekode"], r["level"]): r for r in pub.rate_rows if r["dimension"] == "mode"}
    assert rows[("751", "phone")]["suppressed"]
    # Its municipality's total is published, so another of its cells must be hidden too.
    assert not rows[("751", "total")]["suppressed"] and rows[("751", "web")]["suppressed"]
