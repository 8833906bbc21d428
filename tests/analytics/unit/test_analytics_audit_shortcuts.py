"""The audit's shortcuts give the integer programs' answers: the linear relaxation before the
branch and bound (:func:`_whole_solution`), and a counts-only release that published nothing
left out of the programs (:func:`decide`)."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.optimize import Bounds, LinearConstraint, milp
from scipy.sparse import csr_array

from services.analytics.domain.suppression import CountTable, Earlier, _shape, _whole_solution, audit, decide

TWO_WAY = (("kommune",), ("maalgruppe",), ())


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_the_relaxation_first_finds_a_whole_solution_exactly_when_the_integer_program_has_one(data) -> None:
    rows = data.draw(st.integers(1, 5))
    cols = data.draw(st.integers(1, 6))
    matrix = np.array([[data.draw(st.sampled_from([-2, -1, 0, 0, 1, 1, 2])) for _ in range(cols)] for _ in range(rows)], dtype=float)
    target = np.array([data.draw(st.integers(0, 6)) for _ in range(rows)], dtype=float)
    equal = np.array([data.draw(st.booleans()) for _ in range(rows)])
    lb = target
    ub = np.where(equal, target, np.inf)
    lower = np.zeros(cols)
    upper = np.array([data.draw(st.integers(0, 8)) for _ in range(cols)], dtype=float)
    x, _ = _whole_solution(np.zeros(cols), csr_array(matrix), lb, ub, lower, upper)
    reference = milp(np.zeros(cols), integrality=np.ones(cols), bounds=Bounds(lower, upper),
                     constraints=[LinearConstraint(matrix, lb, ub)], options={"presolve": False})
    assert (x is not None) == (reference.x is not None)
    if x is not None:
        assert np.array_equal(x, np.round(x))
        assert np.all(x >= lower) and np.all(x <= upper)
        assert np.all(matrix @ x >= lb) and np.all(matrix @ x <= ub)


def grid(data, shape, low=None) -> list[list[int]]:
    return [[data.draw(st.integers(0 if low is None else low[r][c], 12)) for c in range(shape[1])] for r in range(shape[0])]


def two_way(rows: list[list[int]]) -> CountTable:
    return CountTable(("kommune", "maalgruppe"), {(f"K{r}", f"G{c}"): n for r, row in enumerate(rows) for c, n in enumerate(row)}, TWO_WAY)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_a_counts_only_release_that_published_nothing_changes_no_answer_of_the_audit(data) -> None:
    """A reader holding a release with every cell hidden, then a later one with some cells
    published, then this one, can prove what a reader of the later two can: the audit with the
    empty release among its programs answers every target as the audit without it."""
    shape = (data.draw(st.integers(2, 3)), data.draw(st.integers(2, 3)))
    first = grid(data, shape)
    middle = grid(data, shape, first)
    now = grid(data, shape, middle)
    t = two_way(now)
    levels = t.levels()
    equations = _shape((("m0", t.dims, t.margins, tuple(tuple(levels[d]) for d in t.dims)),)).equations()
    decided = decide([t], audit_intervals=False)
    count = decided.count
    unknown = np.flatnonzero(decided.status > 0).tolist()
    if not unknown:
        return
    then = decide([two_way(middle)], audit_intervals=False)
    empty = Earlier(decide([two_way(first)], audit_intervals=False).count, np.ones(len(count), dtype=bool))
    layer = Earlier(then.count, then.status > 0)
    targets = [(max(int(count[i]) - 2, 0), int(count[i]) + 3) for i in unknown]
    with_empty = audit(equations, count, unknown, chain=[empty, layer], targets=targets)
    without = audit(equations, count, unknown, chain=[layer], targets=targets)
    for j, (lo, hi) in enumerate(targets):
        assert (with_empty.lower[j] <= lo) == (without.lower[j] <= lo)
        assert (with_empty.upper[j] >= hi) == (without.upper[j] >= hi)
