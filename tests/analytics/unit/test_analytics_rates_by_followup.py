"""Response rates by adaptive follow-up arm (dispatch's rule: an extra message, or control; "none"
for everyone else): the invited and respondents of each municipality split by arm, in the same one
suppression as every other table, and no table at all in a round that ran no rule.

The reader is the integer program of test_analytics_rates_by_mode.py: unknowns for the hidden
cells of the follow-up table, the published municipal totals and national cells as equations, the
invited as limits; no hidden count of 1-4 may come out exact."""

from __future__ import annotations

import random
from collections import Counter

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.analytics.domain.publication import RESPONDENTS, AnswerCount, RateCount, StratumInfo, build_publication
from test_analytics_rates_by_mode import exact

T = 5
KOMMUNER = ("101", "147", "751", "851")
GROUPS = ("a", "b")
ARMS = ("followup_extra", "followup_control")


def inputs(citizens: list[tuple]):
    """``citizens``: (municipality, group, follow-up arm or None, answered) per invited citizen."""
    invited = Counter((k, g) for k, g, _, _ in citizens)
    n = Counter((k, g) for k, g, _, a in citizens if a)
    strata = {f"{k}:{g}": StratumInfo(k, g, n[(k, g)], 3 * invited[(k, g)] + 3) for k in KOMMUNER for g in GROUPS}
    tallies = Counter()
    for k, g, _, a in citizens:
        if a:
            for dim, lvl in (("total", "total"), ("gender", "K")):
                tallies[(f"{k}:{g}", dim, lvl, "q1", "4")] += 1
                tallies[(f"{k}:{g}", dim, lvl, RESPONDENTS, "1")] += 1
    rates = [RateCount(f"{k}:{g}", k, g, "none", invited[(k, g)], 0) for k in KOMMUNER for g in GROUPS]
    rates += [RateCount(f"{k}:{g}", k, g, "none", 0, c, "web", "da") for (k, g), c in n.items()]
    arms = Counter((k, g, arm) for k, g, arm, _ in citizens if arm)
    arms_answered = Counter((k, g, arm) for k, g, arm, a in citizens if arm and a)
    rates += [RateCount(f"{k}:{g}", k, g, "none", c, arms_answered[(k, g, arm)], "", "", arm)
              for (k, g, arm), c in arms.items()]
    return strata, [AnswerCount(*key, v) for key, v in tallies.items()], rates


@st.composite
def rounds(draw):
    rng = random.Random(draw(st.integers(0, 2**32 - 1)))
    chosen = set(rng.sample([(k, g) for k in KOMMUNER for g in GROUPS], rng.randint(1, 4)))
    citizens = []
    for k in KOMMUNER:
        for g in GROUPS:
            for _ in range(rng.choice([3, 8, 20, 40])):
                arm = rng.choice(ARMS) if (k, g) in chosen and rng.random() < 0.7 else None
                citizens.append((k, g, arm, rng.random() < (0.45 if arm == "followup_extra" else 0.3)))
    return citizens


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rounds(), st.sampled_from(["all", "rates"]))
def test_rates_by_followup_arm_are_true_add_up_and_hide_small_cells(citizens, scope):
    pub = build_publication("r", "kl", *inputs(citizens), min_count=T, scope=scope)
    rows = {(r["kommunekode"], r["level"]): r for r in pub.rate_rows if r["dimension"] == "followup"}
    truth_invited, truth_answered = Counter(), Counter()
    for k, _, arm, answered in citizens:
        for kk in (k, "national"):
            for lvl in (arm or "none", "total"):
                truth_invited[(kk, lvl)] += 1
                truth_answered[(kk, lvl)] += answered
    levels = sorted({arm or "none" for _, _, arm, _ in citizens})
    # A row per municipality and level anyone of it is in (as the dispatch arms' table), and totals.
    assert set(rows) == {cell for cell, n in truth_invited.items() if n}
    hidden, bound = [], {}
    for cell, row in rows.items():
        assert row["invited"] == truth_invited[cell]
        if row["suppressed"]:
            assert row["answers"] is None and row["response_rate"] is None
            hidden.append(cell)
            bound[cell] = truth_invited[cell]
        else:
            assert row["answers"] == truth_answered[cell]
            assert row["answers"] == 0 or row["answers"] >= T
    # The municipal and national totals are the other tables' totals: one number everywhere.
    target_group = {(r["kommunekode"], r["level"]): r for r in pub.rate_rows if r["dimension"] == "maalgruppe"}
    for k in (*KOMMUNER, "national"):
        assert rows[(k, "total")]["answers"] == target_group[(k, "total")]["answers"]
    lines = [([(k, lvl) for lvl in levels], (k, "total")) for k in (*KOMMUNER, "national")]
    lines += [([(k, lvl) for k in KOMMUNER], ("national", lvl)) for lvl in (*levels, "total")]
    equations = []
    for parts, whole in lines:
        coefficients = {c: 1 for c in parts if c in bound} | ({whole: -1} if whole in bound else {})
        if coefficients:
            rhs = -sum(rows[c]["answers"] for c in parts if c not in bound and c in rows)
            rhs += 0 if whole in bound else rows[whole]["answers"]
            equations.append((coefficients, rhs))
    for cell in exact(hidden, equations, bound) if hidden else ():
        assert truth_answered[cell] == 0 or truth_answered[cell] >= T, f"cell {cell} = {truth_answered[cell]} is recoverable"


def test_a_round_without_a_followup_rule_publishes_no_followup_table():
    citizens = [(k, g, None, i % 2 == 0) for k in KOMMUNER for g in GROUPS for i in range(12)]
    pub = build_publication("r", "kl", *inputs(citizens), min_count=T)
    assert not [r for r in pub.rate_rows if r["dimension"] == "followup"]
    assert [r for r in pub.rate_rows if r["dimension"] == "maalgruppe"]


def test_the_arms_rates_read_the_effect():
    # 751:a ran the rule: 40 with the extra message (20 answered), 40 in control (10 answered).
    citizens = [(k, g, None, i < 10) for k in KOMMUNER for g in GROUPS for i in range(30)]
    citizens += [("751", "a", "followup_extra", i < 20) for i in range(40)]
    citizens += [("751", "a", "followup_control", i < 10) for i in range(40)]
    pub = build_publication("r", "kl", *inputs(citizens), min_count=T)
    rows = {(r["kommunekode"], r["level"]): r for r in pub.rate_rows if r["dimension"] == "followup"}
    assert rows[("751", "followup_extra")]["response_rate"] == 0.5
    assert rows[("751", "followup_control")]["response_rate"] == 0.25
    assert (rows[("751", "none")]["invited"], rows[("751", "none")]["answers"]) == (60, 20)
    assert rows[("national", "followup_extra")]["invited"] == 40
