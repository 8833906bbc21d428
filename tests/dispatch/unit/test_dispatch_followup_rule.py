"""The adaptive follow-up rule (domain/followup.py): never over budget, only the chosen cells,
deterministic for a seed, a control arm drawn beside the extra one."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from services.dispatch.domain.followup import (
    FOLLOWUP_CONTROL,
    FOLLOWUP_EXTRA,
    CellCount,
    FollowupRule,
    assign,
    choose_cells,
)


@st.composite
def rounds(draw):
    """Cells with counts, and candidates per cell (distinct pseudonyms across cells)."""
    n_cells = draw(st.integers(1, 8))
    counts, candidates = [], {}
    for i in range(n_cells):
        invited = draw(st.integers(0, 60))
        answered = draw(st.integers(0, invited))
        cell = f"{100 + i}:{draw(st.sampled_from(['Dagpenge', 'Sygedagpenge', 'Jobparate']))}{i}"
        counts.append(CellCount(cell, invited, answered))
        candidates[cell] = [f"p{i}-{j}" for j in range(draw(st.integers(0, invited - answered)))]
    return counts, candidates


@st.composite
def rules(draw):
    choice = draw(st.sampled_from(["lowest", "below"]))
    return FollowupRule(
        step=draw(st.sampled_from(["reminder_1", "reminder_2"])),
        lowest_cells=draw(st.integers(1, 5)) if choice == "lowest" else None,
        below_rate=draw(st.floats(0.05, 1.0)) if choice == "below" else None,
        min_invited=draw(st.integers(1, 20)),
        channel=draw(st.sampled_from(["sms", "paper_questionnaire"])),
        budget=draw(st.integers(1, 200)),
        control_share=draw(st.floats(0.05, 0.9)),
        seed=draw(st.text("abc123", min_size=1, max_size=8)),
    )


@settings(max_examples=300, deadline=None)
@given(rounds(), rules())
def test_never_over_budget_and_only_in_the_chosen_cells(data, rule):
    counts, candidates = data
    result = assign(rule, "r1", counts, candidates)
    assert len(result.extra) <= rule.budget
    chosen = set(result.cells)
    cell_of = {p: cell for cell, people in candidates.items() for p in people}
    assert all(cell_of[p] in chosen for p in result.arms)
    assert set(result.arms.values()) <= {FOLLOWUP_EXTRA, FOLLOWUP_CONTROL}
    # The budget is spent unless the chosen cells ran out of candidates first.
    reachable = sum(len(candidates[c]) for c in chosen)
    if len(result.extra) < rule.budget:
        assert len(result.arms) == reachable


@settings(max_examples=200, deadline=None)
@given(rounds(), rules(), st.randoms(use_true_random=False))
def test_deterministic_for_a_seed_whatever_the_input_order(data, rule, rng):
    counts, candidates = data
    first = assign(rule, "r1", counts, candidates)
    shuffled_counts = list(counts)
    rng.shuffle(shuffled_counts)
    shuffled = {}
    for cell in rng.sample(list(candidates), len(candidates)):
        people = list(candidates[cell])
        rng.shuffle(people)
        shuffled[cell] = people
    again = assign(rule, "r1", shuffled_counts, shuffled)
    assert again == first


@settings(max_examples=200, deadline=None)
@given(rounds(), rules())
def test_the_chosen_cells_answer_least(data, rule):
    counts, _ = data
    chosen = choose_cells(rule, counts)
    ranked = [c for c in counts if c.invited >= rule.min_invited]
    rates = {c.cell: c.rate for c in ranked}
    assert set(chosen) <= set(rates)
    if chosen:
        worst_chosen = max(rates[c] for c in chosen)
        left_out = [rates[c.cell] for c in ranked if c.cell not in chosen]
        if rule.lowest_cells is not None:
            assert len(chosen) == min(rule.lowest_cells, len(ranked))
            assert all(rate >= worst_chosen for rate in left_out)
        else:
            assert all(rates[c] < rule.below_rate for c in chosen)
    if rule.below_rate is not None:
        assert all(rates[c.cell] >= rule.below_rate for c in ranked if c.cell not in chosen)


def test_another_seed_another_assignment_and_the_control_share_holds():
    counts = [CellCount("101:Dagpenge", 1000, 100), CellCount("101:Jobparate", 1000, 500)]
    candidates = {"101:Dagpenge": [f"a{i}" for i in range(900)], "101:Jobparate": [f"b{i}" for i in range(500)]}
    rule = FollowupRule(step="reminder_1", lowest_cells=1, channel="sms", budget=300, control_share=0.4, seed="s1")
    one = assign(rule, "r", counts, candidates)
    other = assign(rule.model_copy(update={"seed": "s2"}), "r", counts, candidates)
    assert one.cells == ("101:Dagpenge",) and one.arms != other.arms
    assert len(one.extra) == 300
    control = sum(arm == FOLLOWUP_CONTROL for arm in one.arms.values())
    # 300 extra at 60 %: about 200 controls drawn from the same prefix (binomial, 5 SDs).
    assert abs(control / len(one.arms) - 0.4) < 5 * (0.4 * 0.6 / len(one.arms)) ** 0.5


def test_the_budget_is_spread_over_the_chosen_cells():
    counts = [CellCount(f"{k}:Dagpenge", 100, i) for i, k in enumerate(("101", "147", "151", "153"))]
    candidates = {c.cell: [f"{c.cell}-{j}" for j in range(80)] for c in counts}
    rule = FollowupRule(step="reminder_2", lowest_cells=3, channel="paper_questionnaire", budget=30, seed="x")
    result = assign(rule, "r", counts, candidates)
    assert result.cells == ("101:Dagpenge", "147:Dagpenge", "151:Dagpenge")
    assert len(result.extra) == 30
    # One citizen per cell per turn: the cells' shares of the experiment differ by one at most.
    per_cell = {cell: sum(1 for p in result.arms if p.startswith(cell)) for cell in result.cells}
    assert max(per_cell.values()) - min(per_cell.values()) <= 1


def test_cells_under_min_invited_are_not_ranked():
    counts = [CellCount("101:Dagpenge", 3, 0), CellCount("147:Dagpenge", 50, 10)]
    rule = FollowupRule(step="reminder_1", lowest_cells=1, channel="sms", budget=5)
    assert choose_cells(rule, counts) == ("147:Dagpenge",)


@pytest.mark.parametrize("body, where", [
    ({"step": "reminder_1", "channel": "sms", "budget": 10}, "exactly one of lowest_cells"),
    ({"step": "reminder_1", "channel": "sms", "budget": 10, "lowest_cells": 2, "below_rate": 0.2}, "exactly one"),
    ({"step": "invitation", "channel": "sms", "budget": 10, "lowest_cells": 2}, "step"),
    ({"step": "reminder_1", "channel": "email", "budget": 10, "lowest_cells": 2}, "channel"),
    ({"step": "reminder_1", "channel": "sms", "budget": 0, "lowest_cells": 2}, "budget"),
    ({"step": "reminder_1", "channel": "sms", "budget": 10, "lowest_cells": 2, "control_share": 0}, "control_share"),
])
def test_a_bad_rule_is_refused_saying_where(body, where):
    with pytest.raises(ValidationError) as exc:
        FollowupRule.model_validate(body)
    assert where in str(exc.value)


def test_assignment_is_reproducible_from_the_recorded_counts():
    rng = random.Random(5)
    counts = [CellCount(f"{100 + i}:Dagpenge", 40, rng.randrange(0, 40)) for i in range(6)]
    candidates = {c.cell: [f"{c.cell}/{j}" for j in range(c.invited - c.answered)] for c in counts}
    rule = FollowupRule(step="reminder_1", below_rate=0.5, channel="sms", budget=25, min_invited=1)
    assert assign(rule, "r9", counts, candidates) == assign(rule, "r9", counts, candidates)
    assert assign(rule, "r9", counts, candidates) != assign(rule, "r8", counts, candidates)
