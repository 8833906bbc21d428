"""Primary/secondary suppression, and the differencing attacker that checks it."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.analytics.domain.suppression import (
    TOTAL,
    CellStatus,
    CountTable,
    PublishedTable,
    _determined,
    _determined_integer,
    _equations,
    _identity,
    _shape,
    find_recoverable_cells,
    suppress,
    suppress_table,
)

TWO_WAY = (("kommune",), ("maalgruppe",), ())


def table(rows: list[list[int]], margins=TWO_WAY, measure: str = "answers") -> CountTable:
    cells = {
        (f"K{r}", f"G{c}"): n for r, row in enumerate(rows) for c, n in enumerate(row)
    }
    return CountTable(("kommune", "maalgruppe"), cells, margins, measure)


def primary_only(t: CountTable, min_count: int = 5) -> PublishedTable:
    """What a naive publisher would print: just the small cells hidden."""
    s = suppress_table(t, min_count=min_count)
    entries = {k: (None if d.count < min_count else d.count) for k, d in s.decisions.items()}
    return PublishedTable(t.dims, entries, t.measure)


def statuses(s) -> dict:
    return {k: d.status for k, d in s.decisions.items()}


# -- examples ---------------------------------------------------------------------


def test_single_small_cell_in_a_row_pulls_the_next_smallest() -> None:
    t = table([[10, 3, 12], [8, 20, 9]])
    s = suppress_table(t)
    st_ = statuses(s)
    assert st_[("K0", "G1")] is CellStatus.PRIMARY
    # Row K0: 10 is the smallest other cell; column G1 then needs 20;
    # row K1 then needs its smallest, 8, which also closes column G0.
    assert st_[("K0", "G0")] is CellStatus.SECONDARY
    assert st_[("K1", "G1")] is CellStatus.SECONDARY
    assert st_[("K1", "G0")] is CellStatus.SECONDARY
    assert st_[("K0", "G2")] is CellStatus.PUBLISHED
    # Totals stay visible; nothing can be recovered.
    assert all(not s.decisions[k].suppressed for k in s.decisions if TOTAL in k)
    assert find_recoverable_cells([s.published()]) == {}
    # ... whereas hiding only the small cell gives it straight back.
    assert find_recoverable_cells([primary_only(t)]) == {(0, ("K0", "G1")): 3}


def test_caution_flag_and_thresholds() -> None:
    t = table([[30, 19, 40], [25, 50, 60]])
    s = suppress_table(t, caution_below=20)
    assert s.decisions[("K0", "G1")].caution
    assert not s.decisions[("K0", "G0")].caution
    assert all(d.status is CellStatus.PUBLISHED for d in s.decisions.values())
    stricter = suppress_table(t, min_count=20)
    assert stricter.decisions[("K0", "G1")].status is CellStatus.PRIMARY
    assert not stricter.decisions[("K0", "G1")].caution  # hidden cells carry no flag
    with pytest.raises(ValueError):
        suppress_table(t, min_count=0)


def test_small_total_is_suppressed_with_its_cells() -> None:
    # Municipality K0 has 4 answers in all: its total and its cells go.
    t = table([[1, 0, 3], [30, 40, 50], [20, 25, 35]])
    s = suppress_table(t)
    assert s.decisions[("K0", TOTAL)].status is CellStatus.PRIMARY
    assert all(s.decisions[("K0", f"G{c}")].suppressed for c in range(3))
    assert find_recoverable_cells([s.published()]) == {}


def test_hidden_cells_summing_below_k_are_protected() -> None:
    # Two zeros in a row with a published total: their sum (0) would tell
    # both values. The line rule adds a third cell to that row.
    t = table([[0, 0, 30, 40], [12, 15, 30, 50], [14, 16, 20, 60]])
    s = suppress_table(t)
    row0 = [s.decisions[("K0", f"G{c}")] for c in range(4)]
    hidden = [d for d in row0 if d.suppressed]
    assert len(hidden) >= 3 and sum(d.count for d in hidden) >= 5
    assert find_recoverable_cells([s.published()]) == {}


def test_attacker_finds_a_bridge_the_line_rule_misses() -> None:
    # Hidden cells: a 2x2 block in rows 0-1 x cols 0-1, another in rows
    # 2-3 x cols 2-3, and the bridge (1, 2). Every row and column has at
    # least two hidden cells, yet summing rows 0-1 minus columns 0-1 gives
    # the bridge.
    rows = [
        [3, 4, 50, 60, 70],
        [4, 3, 2, 55, 65],
        [50, 55, 3, 4, 75],
        [60, 65, 4, 3, 80],
        [70, 75, 80, 85, 90],
    ]
    t = table(rows)
    hide = {(0, 0), (0, 1), (1, 0), (1, 1), (2, 2), (2, 3), (3, 2), (3, 3), (1, 2)}
    entries = {}
    for r, c in itertools.product(range(5), range(5)):
        entries[(f"K{r}", f"G{c}")] = None if (r, c) in hide else rows[r][c]
    for r in range(5):
        entries[(f"K{r}", TOTAL)] = sum(rows[r])
    for c in range(5):
        entries[(TOTAL, f"G{c}")] = sum(row[c] for row in rows)
    entries[(TOTAL, TOTAL)] = sum(map(sum, rows))
    found = find_recoverable_cells([PublishedTable(t.dims, entries)])
    assert found == {(0, ("K1", "G2")): 2}
    # suppress() does not stop at the line rule for such a pattern.
    s = suppress_table(t)
    assert find_recoverable_cells([s.published()]) == {}


def test_linked_tables_share_totals_and_decisions() -> None:
    groups = CountTable(
        ("kommune", "maalgruppe"),
        {("A", "dp"): 40, ("A", "sdp"): 3, ("A", "akt"): 22, ("B", "dp"): 60, ("B", "sdp"): 35, ("B", "akt"): 2},
        TWO_WAY,
    )
    genders = CountTable(
        ("kommune", "koen"),
        {("A", "K"): 33, ("A", "M"): 32, ("B", "K"): 4, ("B", "M"): 93},
        (("kommune",), ("koen",), ()),
    )
    s_groups, s_genders = suppress([groups, genders])
    # The municipality totals and the national total are one quantity each.
    for key in (("A", TOTAL), ("B", TOTAL), (TOTAL, TOTAL)):
        assert s_groups.decisions[key].status == s_genders.decisions[key].status
        assert s_groups.decisions[key].count == s_genders.decisions[key].count
    assert find_recoverable_cells([s_groups.published(), s_genders.published()]) == {}
    with pytest.raises(ValueError):
        suppress([groups, CountTable(("kommune",), {("A",): 1, ("B",): 2}, ((),))])


def test_three_way_table_linked_to_its_two_way_margin() -> None:
    # (kommune, group, gender) with its (kommune, group) margin published,
    # plus the (kommune, group) table itself: the same quantities.
    cells3 = {}
    for i, (k, g, s) in enumerate(itertools.product("AB", ("dp", "akt"), "KM")):
        cells3[(k, g, s)] = [12, 2, 30, 25, 7, 40, 33, 18][i]
    t3 = CountTable(("kommune", "maalgruppe", "koen"), cells3, (("kommune", "maalgruppe"), ("kommune",), ()))
    cells2 = {}
    for (k, g, s), n in cells3.items():
        cells2[(k, g)] = cells2.get((k, g), 0) + n
    t2 = CountTable(("kommune", "maalgruppe"), cells2, TWO_WAY)
    out = suppress([t3, t2])
    assert find_recoverable_cells([o.published() for o in out]) == {}


def test_attacker_reads_a_cell_printed_in_another_table() -> None:
    a = PublishedTable(("kommune",), {("A",): None, ("B",): None, (TOTAL,): 50})
    b = PublishedTable(("kommune", "koen"), {("A", TOTAL): 20, ("A", "K"): None, ("A", "M"): None})
    found = find_recoverable_cells([a, b])
    assert found == {(0, ("A",)): 20, (0, ("B",)): 30}


def test_table_validation() -> None:
    with pytest.raises(ValueError):
        CountTable(("a",), {("x", "y"): 1})
    with pytest.raises(ValueError):
        CountTable(("a",), {("x",): -1})
    with pytest.raises(ValueError):
        CountTable(("a", "b"), {("x", "y"): 1}, (("a", "b"),))
    with pytest.raises(ValueError):
        CountTable(("a", "b"), {("x", "y"): 1}, (("c",),))


# -- properties -----------------------------------------------------------------------

# Mostly publishable cells with a sprinkling of small ones, as in a real round.
counts = st.one_of(st.integers(0, 4), st.integers(5, 80), st.integers(5, 30))


@st.composite
def two_way(draw) -> list[list[int]]:
    nr = draw(st.integers(1, 5))
    nc = draw(st.integers(1, 5))
    return [[draw(counts) for _ in range(nc)] for _ in range(nr)]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(two_way(), st.integers(1, 10))
def test_suppressed_two_way_tables_leak_nothing(rows, k) -> None:
    t = table(rows)
    s = suppress_table(t, min_count=k)
    for d in s.decisions.values():
        if d.count < k:
            assert d.status is CellStatus.PRIMARY
        elif d.status is CellStatus.PRIMARY:
            pytest.fail("a cell with enough answers is marked primary")
    assert find_recoverable_cells([s.published()]) == {}


@st.composite
def three_way(draw):
    shape = [draw(st.integers(1, 3)) for _ in range(3)]
    dims = ("kommune", "maalgruppe", "koen")
    cells = {
        tuple(f"{d[0]}{i}" for d, i in zip(dims, idx)): draw(counts)
        for idx in itertools.product(*(range(n) for n in shape))
    }
    proper = [m for r in range(3) for m in itertools.combinations(dims, r)]
    margins = draw(st.lists(st.sampled_from(proper), unique=True, max_size=len(proper)))
    return CountTable(dims, cells, tuple(margins))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(three_way())
def test_suppressed_three_way_tables_leak_nothing(t) -> None:
    s = suppress_table(t)
    assert find_recoverable_cells([s.published()]) == {}


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(two_way(), st.data())
def test_suppressed_linked_tables_leak_nothing(rows, data) -> None:
    # A second breakdown of the same municipalities (e.g. by gender) whose
    # rows add up to the same municipality totals.
    t1 = table(rows)
    cells2 = {}
    for r, row in enumerate(rows):
        total = sum(row)
        k_part = data.draw(st.integers(0, total))
        cells2[(f"K{r}", "K")] = k_part
        cells2[(f"K{r}", "M")] = total - k_part
    t2 = CountTable(("kommune", "koen"), cells2, (("kommune",), ("koen",), ()))
    out = suppress([t1, t2])
    assert find_recoverable_cells([o.published() for o in out]) == {}


@settings(max_examples=200, deadline=None)
@given(two_way(), st.data())
def test_attacker_recovers_only_true_values(rows, data) -> None:
    t = table(rows)
    s = suppress_table(t, min_count=1)  # only for the completed table's counts
    keys = sorted(s.decisions, key=repr)
    hidden = data.draw(st.sets(st.sampled_from(keys)))
    pub = PublishedTable(t.dims, {k: None if k in hidden else s.decisions[k].count for k in keys})
    for (_, key), value in find_recoverable_cells([pub]).items():
        assert key in hidden
        assert value == s.decisions[key].count and isinstance(value, int)


@settings(max_examples=200, deadline=None)
@given(
    st.integers(2, 5),
    st.integers(2, 5),
    st.data(),
)
def test_attacker_defeats_primary_only_suppression(nr, nc, data) -> None:
    # All cells publishable except one: hiding just that one is useless.
    rows = [[data.draw(st.integers(5, 80)) for _ in range(nc)] for _ in range(nr)]
    r, c = data.draw(st.integers(0, nr - 1)), data.draw(st.integers(0, nc - 1))
    rows[r][c] = data.draw(st.integers(1, 4))
    t = table(rows)
    found = find_recoverable_cells([primary_only(t)])
    assert found == {(0, (f"K{r}", f"G{c}")): rows[r][c]}
    # With the margins published, the full suppression protects it.
    assert find_recoverable_cells([suppress_table(t).published()]) == {}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(two_way().map(table), three_way()), st.data())
def test_integer_elimination_determines_what_the_rational_one_does(t, data) -> None:
    # suppress() runs the fraction-free elimination (fast); the attacker the tests audit with
    # keeps the rational one. Any pattern of hidden entries, not only suppress()'s: they must
    # find the same determined cells, with the same values.
    s = suppress_table(t, min_count=1)  # the completed table's entries and counts
    lay_keys = sorted(s.decisions, key=repr)
    hidden = data.draw(st.sets(st.sampled_from(lay_keys)))
    ident = {k: _identity(t.measure, t.dims, k) for k in lay_keys}
    known = {ident[k]: s.decisions[k].count for k in lay_keys if k not in hidden}
    unknown = {ident[k] for k in hidden} - set(known)
    equations = _equations([(t.dims, t.measure, lay_keys)])
    rational = _determined(equations, known, unknown)
    assert _determined_integer(equations, known, unknown) == set(rational)
    assert _equations([(t.dims, t.measure, lay_keys)], [ident]) == equations


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(two_way(), st.data())
def test_a_cached_shape_decides_as_a_fresh_one(rows, data) -> None:
    # suppress() caches each table shape's structure (entries, lines, equations) and shares it
    # between measures: deciding other counts of the same shape, under another measure name,
    # after the cache was filled must give what a cold cache gives.
    other = [[data.draw(st.integers(0, 12)) for _ in row] for row in rows]
    first, second = table(rows, measure="q1"), table(other, measure="q2")
    _shape.cache_clear()
    cold = [statuses(s) for s in suppress([second])]
    suppress([first])
    warm = [statuses(s) for s in suppress([second])]
    assert warm == cold
    assert _shape.cache_info().hits >= 1
