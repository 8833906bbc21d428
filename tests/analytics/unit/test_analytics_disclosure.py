"""Disclosure control against a reader with everything: protection intervals checked by an
integer program written here (not the audit's), and releases compared with each other."""

from __future__ import annotations

import random
from collections import Counter

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.optimize import Bounds, LinearConstraint, milp

from services.analytics.domain.publication import RESPONDENTS, AnswerCount, Baseline, RateCount, StratumInfo, build_publication
from services.analytics.domain.suppression import TOTAL, CountTable, History, decide, suppress

T = 5


def reader_bounds(tables: list[dict], floors: dict | None = None, limits: dict | None = None) -> dict:
    """What a reader can prove about each hidden cell of linked 2-way tables (municipality x
    level with municipal and national totals; ``tables``: dimension -> {(k, lvl): value or
    None}, totals under TOTAL): [min, max] over whole-number solutions, by brute integer
    programs. Cells are named (k, dimension or None, lvl); the totals shared between tables
    are one unknown."""
    names: dict[tuple, int] = {}
    known: dict[tuple, int] = {}
    equations: list[tuple[tuple, list[tuple]]] = []

    def name(k, dim, lvl):
        return (k, None if lvl is TOTAL else dim, lvl)

    for dim, cells in tables.items():
        ks = sorted({k for k, _ in cells if k is not TOTAL})
        lvls = sorted({lvl for _, lvl in cells if lvl is not TOTAL})
        for (k, lvl), v in cells.items():
            n = name(k, dim, lvl)
            if v is None:
                names.setdefault(n, len(names))
            else:
                known[n] = v
        for k in [*ks, TOTAL]:
            equations.append((name(k, dim, TOTAL), [name(k, dim, lvl) for lvl in lvls]))
        for lvl in lvls:
            equations.append((name(TOTAL, dim, lvl), [name(k, dim, lvl) for k in ks]))
    rows, rhs = [], []
    for total, parts in equations:
        coeffs = np.zeros(len(names))
        b = 0
        for cell, sign in [(total, 1), *[(p, -1) for p in parts]]:
            if cell in names:
                coeffs[names[cell]] += sign
            else:
                b -= sign * known[cell]
        if coeffs.any():
            rows.append(coeffs)
            rhs.append(b)
    lo = np.array([float((floors or {}).get(n, 0)) for n in names])
    hi = np.array([float((limits or {}).get(n, np.inf)) for n in names])
    out = {}
    for n, j in names.items():
        interval = []
        for sign in (1, -1):
            c = np.zeros(len(names))
            c[j] = sign
            constraints = [LinearConstraint(np.array(rows), rhs, rhs)] if rows else []
            result = milp(c, integrality=np.ones(len(names)), bounds=Bounds(lo, hi), constraints=constraints)
            # Unbounded (3), or "unbounded or infeasible" (4): the truth is a solution, so unbounded.
            interval.append(np.inf if result.status in (3, 4) else sign * result.fun)
        out[n] = tuple(interval)
    return out


def published(decided_tables) -> dict:
    return {
        dims[1]: {key: (None if d.suppressed else d.count) for key, d in table.decisions.items()}
        for dims, table in ((t.table.dims, t) for t in decided_tables)
    }


def tables_of(counts: dict[str, dict[tuple, int]]) -> list[CountTable]:
    return [CountTable(("kommunekode", dim), cells, (("kommunekode",), (dim,), ()), "respondents") for dim, cells in counts.items()]


def linked_counts(rng: random.Random) -> dict[str, dict[tuple, int]]:
    """Two linked tables of small counts: target group and gender per municipality."""
    kommuner = [str(100 + i) for i in range(rng.randint(2, 5))]
    groups = ["a", "b", "c"][: rng.randint(2, 3)]
    people = [(k, rng.choice(groups), rng.choice("KM")) for k in kommuner for _ in range(rng.choice([2, 4, 7, 12, 30]))]
    out: dict[str, dict[tuple, int]] = {"maalgruppe": Counter(), "gender": Counter()}
    for k, g, s in people:
        out["maalgruppe"][(k, g)] += 1
        out["gender"][(k, s)] += 1
    return {
        "maalgruppe": {(k, g): out["maalgruppe"][(k, g)] for k in kommuner for g in groups},
        "gender": {(k, s): out["gender"][(k, s)] for k in kommuner for s in "KM"},
    }


def assert_protected(decided, counts, floors=None, previous=None) -> None:
    """The protection every suppressed cell must have against a reader of all the tables."""
    bounds = reader_bounds(published(decided), floors)
    truth = {}
    for table in decided:
        dim = table.table.dims[1]
        for (k, lvl), d in table.decisions.items():
            truth[(k, None if lvl is TOTAL else dim, lvl)] = d.count
    for cell, (lo, hi) in bounds.items():
        x = truth[cell]
        ref = (previous or {}).get(cell)
        assert lo < hi or (ref is not None and lo == hi == ref), ("recovered exactly", cell, x, lo, hi)
        if ref is None and x < T:
            assert lo <= 0 and hi >= T, ("a small cell narrowed", cell, x, lo, hi)
        elif ref is not None and 0 < abs(x - ref) < T:
            assert lo <= ref and hi >= ref + T, ("a small change narrowed", cell, x, ref, lo, hi)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 10_000))
def test_every_suppressed_cell_keeps_its_protection_interval(seed) -> None:
    """On linked tables full of 1-9 cells, a reader solving integer programs over everything
    published recovers no hidden cell and cannot tell a small one from 0 or from 5+."""
    counts = linked_counts(random.Random(seed))
    decided = suppress(tables_of(counts), min_count=T)
    assert_protected(decided, counts)


def laid_out(decided, tables) -> tuple[dict, dict]:
    """decide()'s arrays as a reader sees them (dimension -> key -> value or None) and the
    truth by reader_bounds' cell names."""
    seen, truth = {}, {}
    for t, table in enumerate(tables):
        dim = table.dims[1]
        seen[dim] = {}
        for key, i in zip(decided.keys[t], decided.entry_ids[t].tolist()):
            seen[dim][key] = None if decided.status[i] else int(decided.count[i])
            truth[(key[0], None if key[1] is TOTAL else dim, key[1])] = int(decided.count[i])
    return seen, truth


def test_the_line_rule_alone_leaves_intervals_narrow() -> None:
    """The audit is what protects intervals: without it, a reader narrows some small cell (so
    the check above can fail)."""
    narrowed = 0
    for seed in range(40):
        tables = tables_of(linked_counts(random.Random(seed)))
        seen, truth = laid_out(decide(tables, min_count=T, audit_intervals=False), tables)
        for cell, (lo, hi) in reader_bounds(seen).items():
            narrowed += truth[cell] < T and (lo > 0 or hi < T)
    assert narrowed > 0


def first_release(counts) -> tuple:
    """A first release's decisions and the history a second one is decided against."""
    first = decide(tables_of(counts), min_count=T)
    names = first.keys_by_number
    published = {n: int(first.count[i]) for i, n in enumerate(names) if first.status[i] == 0}
    floor = dict(published) | {n: int(first.lower[i]) for i, n in enumerate(names) if first.status[i] != 0}
    return first, History(published, floor)


@pytest.mark.parametrize("seed", range(12))
def test_one_new_respondent_cannot_be_read_from_two_releases(seed) -> None:
    """Release, one more respondent, release: no published cell moved by 1-4, and the cells
    that moved keep an interval that does not show the move, for a reader holding both."""
    rng = random.Random(seed)
    before = linked_counts(rng)
    after = {dim: dict(cells) for dim, cells in before.items()}
    k = rng.choice(sorted({k for k, _ in before["gender"]}))
    g = rng.choice(sorted({g for _, g in before["maalgruppe"]}))
    after["maalgruppe"][(k, g)] += 1
    after["gender"][(k, "K")] += 1
    _, history = first_release(before)
    second = decide(tables_of(after), min_count=T, history=history)
    # As suppress() lays them out: per table, key -> decision.
    names = second.keys_by_number
    changed_published = [
        n for i, n in enumerate(names)
        if second.status[i] == 0 and n in history.published and 0 < abs(int(second.count[i]) - history.published[n]) < T
    ]
    assert changed_published == []
    # A reader with both releases: the first release's published values and proven lower
    # bounds as floors (counts only grow), the second's published values as equations.
    tables = tables_of(after)
    seen, counts = laid_out(second, tables)
    by_name = {}
    for t, table in enumerate(tables):
        for key, i in zip(second.keys[t], second.entry_ids[t].tolist()):
            by_name[(key[0], None if key[1] is TOTAL else table.dims[1], key[1])] = names[i]
    floors = {cell: history.floor.get(n, 0) for cell, n in by_name.items()}
    previous = {cell: history.published[n] for cell, n in by_name.items() if n in history.published}
    for cell, (lo, hi) in reader_bounds(seen, floors).items():
        ref, x = previous.get(cell), counts[cell]
        if ref is not None and 0 < x - ref < T:
            assert lo <= ref and hi >= ref + T, ("the new respondent's cell narrowed", cell, ref, x, lo, hi)
        if ref is None and x < T:
            assert lo <= 0 and hi >= T, (cell, x, lo, hi)


def units_round(seed: int, extra: int = 0):
    """A small round as the builder gives it (answer tallies, respondents, rates), with
    ``extra`` more respondents added at the end."""
    rng = random.Random(seed)
    strata = {f"{k}:{g}": (k, g) for k in ("101", "147", "751") for g in ("a", "b")}
    units = []
    for h in strata:
        for _ in range(rng.choice([3, 6, 9, 14, 25])):
            units.append((h, rng.choice("KM"), rng.choice(["18-29", "30+"]), rng.choice(["<1", "1+"]), rng.choice([1, 2, 3, 4, 5, "dk"])))
    for _ in range(extra):
        h = rng.choice(sorted(strata))
        units.append((h, rng.choice("KM"), rng.choice(["18-29", "30+"]), rng.choice(["<1", "1+"]), rng.choice([1, 2, 3, 4, 5, "dk"])))
    tallies = Counter()
    for h, g, a, d, answer in units:
        code = "dk" if answer == "dk" else str(answer)
        for dim, lvl in (("total", "total"), ("gender", g), ("age_band", a), ("duration_band", d)):
            tallies[(h, dim, lvl, "q1", code)] += 1
            tallies[(h, dim, lvl, RESPONDENTS, "1")] += 1
    n = Counter(u[0] for u in units)
    info = {h: StratumInfo(k, g, n[h], n[h] * 4) for h, (k, g) in strata.items()}
    rates = [RateCount(h, k, g, "none", n[h] * 2 + 2, n[h]) for h, (k, g) in strata.items()]
    return info, [AnswerCount(*key, v) for key, v in tallies.items()], rates


@pytest.mark.parametrize("seed", range(4))
def test_a_release_against_the_last_hides_every_cell_one_answer_moved(seed) -> None:
    """Through build_publication: a release after one more answer publishes no cell whose
    respondents or answer counts moved by 1-4 since the release before."""
    first = build_publication("r", "kl", *units_round(seed), min_count=T)
    second = build_publication("r", "kl", *units_round(seed, extra=1), min_count=T, baseline=first.baseline)
    before = {(r["question"], r["dimension"], r["kommunekode"], r["level"]): r for r in first.indicator_rows if not r["suppressed"]}
    moved = 0
    for r in second.indicator_rows:
        old = before.get((r["question"], r["dimension"], r["kommunekode"], r["level"]))
        if r["suppressed"] or old is None:
            continue
        for column in ("n_respondents", "n_answers", "n_valid", "n_dont_know"):
            assert not 0 < abs(r[column] - old[column]) < T, (r, column)
        moved += r["n_respondents"] != old["n_respondents"]
    assert moved == 0  # one answer moves every cell it is in by 1: none of them is published
    assert Baseline.from_json(second.baseline.to_json()) == second.baseline


def test_a_preliminary_release_publishes_national_cells_and_municipal_totals_only() -> None:
    """During fieldwork: the country and each municipality's total, no municipal breakdown, so
    the final release's breakdowns have no earlier value to be differenced against."""
    info, answers, rates = units_round(5)
    preliminary = build_publication("r", "kl", info, answers, rates, min_count=T, scope="totals")
    shown = {(r["dimension"], r["kommunekode"], r["level"]) for r in preliminary.indicator_rows if not r["suppressed"]}
    assert shown and all(k == "national" or lvl == "total" for _, k, lvl in shown)
    assert any(k != "national" for _, k, _ in shown) and any(lvl != "total" for _, _, lvl in shown)
    final = build_publication("r", "kl", info, answers, rates, min_count=T, baseline=preliminary.baseline, scope="all")
    assert any(k != "national" and lvl != "total" for (_, k, lvl) in
               {(r["dimension"], r["kommunekode"], r["level"]) for r in final.indicator_rows if not r["suppressed"]})
    with pytest.raises(ValueError):
        build_publication("r", "kl", info, answers, rates, scope="draft")


# --- answers per code ---------------------------------------------------------------------------

CODES3 = ("a", "b", "c")


def coded_units(seed: int) -> list[tuple[str, str, str]]:
    """(municipality, target group, answer code) per respondent: small strata, skewed answers."""
    rng = random.Random(seed)
    units = []
    for k in ("k1", "k2", "k3"):
        for g in ("g1", "g2", "g3"):
            for _ in range(rng.choice([0, 1, 2, 3, 4, 6, 9])):
                units.append((k, g, rng.choices(CODES3, weights=(6, 3, 1))[0]))
    return units


def coded_reader(units, status: dict) -> dict:
    """A reader's [min, max] for every hidden cell of a municipality x target group table with
    its margins, knowing each published cell's respondents and answers per code; unknowns: the
    hidden cells' respondents and answers per code (summing to the respondents)."""
    ks, gs = ("k1", "k2", "k3"), ("g1", "g2", "g3")
    cells = [(k, g) for k in ks for g in gs] + [(k, TOTAL) for k in ks] + [(TOTAL, g) for g in gs] + [(TOTAL, TOTAL)]

    def inside(cell, u):
        return all(v is TOTAL or v == w for v, w in zip(cell, u[:2]))

    truth = {c: sum(inside(c, u) for u in units) for c in cells}
    per_code = {(c, a): sum(inside(c, u) and u[2] == a for u in units) for c in cells for a in CODES3}
    hidden = [c for c in cells if status[c]]
    column = {}
    for c in hidden:
        column[(c, None)] = len(column)
        for a in CODES3:
            column[(c, a)] = len(column)
    lines = [((k, TOTAL), [(k, g) for g in gs]) for k in (*ks, TOTAL)] + [((TOTAL, g), [(k, g) for k in ks]) for g in gs]
    rows, rhs = [], []
    for measure in (None, *CODES3):
        for total, parts in lines:
            coeffs, b = np.zeros(len(column)), 0
            for cell, sign in [(total, 1), *[(p, -1) for p in parts]]:
                if (cell, measure) in column:
                    coeffs[column[(cell, measure)]] += sign
                else:
                    b -= sign * (truth[cell] if measure is None else per_code[(cell, measure)])
            if coeffs.any():
                rows.append(coeffs)
                rhs.append(b)
    for c in hidden:
        coeffs = np.zeros(len(column))
        coeffs[column[(c, None)]] = 1
        for a in CODES3:
            coeffs[column[(c, a)]] = -1
        rows.append(coeffs)
        rhs.append(0)
    bounds = {}
    if not rows:
        return bounds
    constraint = LinearConstraint(np.array(rows), rhs, rhs)
    for c in hidden:
        out = []
        for sign in (1, -1):
            objective = np.zeros(len(column))
            objective[column[(c, None)]] = sign
            res = milp(objective, integrality=np.ones(len(column)), bounds=Bounds(0, 100), constraints=constraint)
            out.append(round(sign * res.fun))
        bounds[c] = (out[0], out[1], truth[c])
    return bounds


def coded_decision(units, with_answers: bool) -> dict:
    ks, gs = ("k1", "k2", "k3"), ("g1", "g2", "g3")
    table = CountTable(("k", "g"), {(k, g): sum(u[:2] == (k, g) for u in units) for k in ks for g in gs}, (("k",), ("g",), ()), "respondents")
    answers = {(k, g): [sum(u == (k, g, a) for u in units) for a in CODES3] for k in ks for g in gs}
    decided = suppress([table], breakdowns={"q1": [answers]} if with_answers else None)[0]
    return {key: d.suppressed for key, d in decided.decisions.items()}


def protection_failures(bounds: dict) -> list:
    return [(c, b) for c, b in bounds.items() if (b[2] < T and not (b[0] == 0 and b[1] >= T)) or b[0] == b[1]]


@pytest.mark.parametrize("seed", range(12))
def test_answers_per_code_cannot_narrow_a_hidden_cell(seed) -> None:
    """Every published cell gives its answers per code; a reader holding them (an integer
    program written here) still cannot tell a hidden cell below 5 from 0 and from 5, nor pin
    any hidden cell."""
    units = coded_units(seed)
    assert protection_failures(coded_reader(units, coded_decision(units, with_answers=True))) == []


def test_without_the_answers_per_code_the_audit_would_let_cells_be_narrowed() -> None:
    """The same rounds decided on respondents alone: the reader with the answers per code
    narrows hidden cells in some of them (what the breakdowns in the audit are for)."""
    narrowed = [seed for seed in range(12) if protection_failures(coded_reader(coded_units(seed), coded_decision(coded_units(seed), with_answers=False)))]
    assert narrowed, "no round where answers per code narrow a cell the respondents' audit protects"
