"""The count-based publication against the domain's unit-level estimators and the attacker."""

from __future__ import annotations

import math
import pickle
import random
from collections import Counter

import pytest

from services.analytics.domain import AGREEMENT_SCALE, PublishedTable, StratifiedDesign, cell_indicators, find_recoverable_cells
from services.analytics.domain.answers import CODES, DONT_KNOW, answer_code, scale_label
from services.analytics.domain.publication import (
    DIMENSIONS,
    INDICATORS,
    AnswerCount,
    RateCount,
    StratumInfo,
    build_publication,
    cell_estimates,
    change_between,
    design_strata,
    estimate_cells,
)
from services.analytics.domain.suppression import TOTAL, CountTable, suppress

TOL = 1e-9
STRATA = {  # stratum -> (kommune, group, N_h)
    "101:Dagpenge": ("101", "Dagpenge", 900),
    "101:Sygedagpenge": ("101", "Sygedagpenge", 300),
    "147:Dagpenge": ("147", "Dagpenge", 200),
    "147:Sygedagpenge": ("147", "Sygedagpenge", 25),
    "751:Dagpenge": ("751", "Dagpenge", 4),
}
SIZES = {"101:Dagpenge": 60, "101:Sygedagpenge": 25, "147:Dagpenge": 14, "147:Sygedagpenge": 6, "751:Dagpenge": 4}


def make_units(seed: int = 7) -> list[dict]:
    rng = random.Random(seed)
    units = []
    for h, n in SIZES.items():
        for _ in range(n):
            units.append(
                {
                    "stratum": h,
                    "gender": rng.choice("MK"),
                    "age_band": rng.choice(["18-29", "30-49", "50+"]),
                    "duration_band": rng.choice(["<1", "1+"]),
                    "answers": {
                        "q1": rng.choice([1, 2, 3, 4, 5, 5, 4, "ved_ikke", None]),
                        "q13": rng.choice(["meget_enig", "enig", "uenig", 3, "ved_ikke", None, "fri tekst"]),
                    },
                }
            )
    return units


def tallies(units):
    counts = Counter()
    for u in units:
        for q, v in u["answers"].items():
            code = answer_code(v)
            if code is None:
                continue
            counts[(u["stratum"], "total", "total", q, code)] += 1
            for dim in ("gender", "age_band", "duration_band"):
                counts[(u["stratum"], dim, u[dim], q, code)] += 1
    return [AnswerCount(*k, n) for k, n in counts.items()]


def strata_info(units) -> dict[str, StratumInfo]:
    n = Counter(u["stratum"] for u in units)
    return {h: StratumInfo(k, g, n[h], big_n) for h, (k, g, big_n) in STRATA.items()}


def test_answer_codes() -> None:
    assert answer_code(5) == "5" and answer_code("meget_enig") == "5" and answer_code("Meget uenig") == "1"
    assert answer_code("ved_ikke") == DONT_KNOW and answer_code(None) is None
    assert answer_code(0) is None and answer_code(True) is None and answer_code("fri tekst") is None
    assert answer_code("tilfreds") == "4" and scale_label("5") == "Meget enig"


def test_estimates_equal_the_domain_design() -> None:
    units = make_units()
    pub = build_publication("r1", "kl_core", strata_info(units), tallies(units), [], min_count=1)
    design = StratifiedDesign([u["stratum"] for u in units], population_sizes={h: v[2] for h, v in STRATA.items()})
    checked = 0
    for row in pub.indicator_rows:
        if row["suppressed"]:
            continue
        labels = []
        for u in units:
            code = answer_code(u["answers"].get(row["question"]))
            labels.append(None if code is None else scale_label(code))
        k, dim, lvl = row["kommunekode"], row["dimension"], row["level"]
        domain = [
            (k == "national" or STRATA[u["stratum"]][0] == k)
            and (lvl == "total" or (STRATA[u["stratum"]][1] if dim == "maalgruppe" else u[dim]) == lvl)
            for u in units
        ]
        ref = cell_indicators(design, labels, domain)
        assert row["n_answers"] == ref.n_answers and row["n_valid"] == ref.n_valid
        pairs = [("mean", ref.weighted.mean_score, ref.unweighted.mean_score),
                 ("top2_share", ref.weighted.top_box_share, ref.unweighted.top_box_share),
                 ("dont_know_share", ref.weighted.dont_know_share, ref.unweighted.dont_know_share)]
        pairs += [(f"share_{s}", ref.weighted.distribution[AGREEMENT_SCALE.labels[s - 1]],
                   ref.unweighted.distribution[AGREEMENT_SCALE.labels[s - 1]]) for s in range(1, 6)]
        for ind, w, uw in pairs:
            for ours, theirs in ((row[ind], w.value), (row[f"{ind}_se"], w.se), (row[f"{ind}_ci_low"], w.ci_low),
                                 (row[f"{ind}_ci_high"], w.ci_high), (row[f"{ind}_unweighted"], uw.value),
                                 (row[f"{ind}_unweighted_se"], uw.se)):
                assert math.isclose(ours, theirs, rel_tol=TOL, abs_tol=TOL), (row["question"], k, dim, lvl, ind)
        checked += 1
    assert checked > 50


def published_tables(pub) -> list[PublishedTable]:
    """Rebuild what a reader sees as the attacker's tables (hidden entries as None)."""
    tables = []
    for q in pub.questions():
        for dim in DIMENSIONS:
            rows = [r for r in pub.indicator_rows if r["question"] == q and r["dimension"] == dim]
            for column in ("n_valid", "n_answers"):
                tables.append(PublishedTable(("kommunekode", dim), {
                    (TOTAL if r["kommunekode"] == "national" else r["kommunekode"], TOTAL if r["level"] == "total" else r["level"]): r[column]
                    for r in rows}, f"{column}:{q}"))
    for dim in ("maalgruppe", "arm"):
        rows = [r for r in pub.rate_rows if r["dimension"] == dim]
        tables.append(PublishedTable(("kommunekode", dim), {
            (TOTAL if r["kommunekode"] == "national" else r["kommunekode"], TOTAL if r["level"] == "total" else r["level"]): r["answers"]
            for r in rows}, "respondents"))
    return tables


def test_small_cells_are_suppressed_and_not_recoverable() -> None:
    units = make_units()
    n = Counter(u["stratum"] for u in units)
    rates = [RateCount(h, k, g, "A" if i % 2 else "B", n[h] * 3, n[h]) for i, (h, (k, g, _)) in enumerate(STRATA.items())]
    pub = build_publication("r1", "kl_core", strata_info(units), tallies(units), rates)
    hidden = [r for r in pub.indicator_rows if r["suppressed"]]
    assert hidden and all(r["mean"] is None and r["n_answers"] is None for r in hidden)
    assert all(r["n_valid"] >= 5 for r in pub.indicator_rows if not r["suppressed"])
    assert any(r["caution"] for r in pub.indicator_rows)
    assert find_recoverable_cells(published_tables(pub)) == {}
    assert any(r["suppressed"] for r in pub.rate_rows)


def test_change_between_rounds() -> None:
    c = change_between((3.9, 0.05), (4.1, 0.05))
    assert math.isclose(c.z, 0.2 / math.sqrt(0.005)) and c.significant
    assert not change_between((3.9, 0.2), (4.0, 0.2)).significant
    assert math.isclose(change_between((0.5, 0.1), (0.5, 0.1)).p_value, 1.0)


def test_vectorised_cell_estimates_equal_the_per_cell_estimator() -> None:
    """estimate_cells (all published cells at once, numpy) against cell_estimates (one cell,
    exact sums), with lonely, census and frame-less strata and cells without scale answers."""
    rng = random.Random(3)
    strata = {
        "a": StratumInfo("1", "g", 40, 400),
        "b": StratumInfo("1", "h", 1, 30),  # lonely
        "c": StratumInfo("2", "g", 12, 12),  # census: no variance
        "d": StratumInfo("2", "h", 7, None),  # no frame yet: weight 1, no fpc
    }
    design = design_strata(strata)
    n_total = sum(s.respondents for s in strata.values())
    cells = []
    for _ in range(200):
        chosen = rng.sample(sorted(strata), rng.randint(1, 4))
        cells.append({h: {c: rng.choice([0, 0, 1, 2, 7]) for c in CODES} for h in chosen})
    cells.append({"a": {"dk": 3}})  # "ved ikke" only: no mean
    cells.append({"b": {"4": 1}})
    got = estimate_cells(cells, design, n_total)
    for cell, row in zip(cells, got):
        ref = cell_estimates(cell, design, n_total, 0)
        assert (row["n_answers"], row["n_valid"], row["n_dont_know"]) == (ref.n_answers, ref.n_valid, ref.n_dont_know)
        for ind in INDICATORS:
            for suffix, est, attr in (("", ref.weighted[ind], "value"), ("_se", ref.weighted[ind], "se"),
                                      ("_ci_low", ref.weighted[ind], "ci_low"), ("_ci_high", ref.weighted[ind], "ci_high"),
                                      ("_unweighted", ref.unweighted[ind], "value"), ("_unweighted_se", ref.unweighted[ind], "se")):
                if est is None:
                    assert row[f"{ind}{suffix}"] is None, (cell, ind, suffix)
                else:
                    assert math.isclose(row[f"{ind}{suffix}"], getattr(est, attr), rel_tol=1e-12, abs_tol=1e-12), (cell, ind, suffix)


@pytest.mark.parametrize("seed", range(6))
def test_suppressing_measure_by_measure_equals_one_call(seed) -> None:
    """The publication suppresses each question's tables on their own: the same decisions as
    one suppress() over every table of the round, since no line or equation spans measures."""
    rng = random.Random(seed)
    kommuner = [str(k) for k in range(rng.randint(2, 6))]
    tables = []
    for measure in ("valid:q1", "valid:q2", "respondents"):
        for dim, levels in (("maalgruppe", ["a", "b", "c"]), ("gender", ["K", "M"])):
            cells = {(k, lvl): rng.choice([0, 1, 2, 3, 4, 6, 9, 15, 40]) for k in kommuner for lvl in levels}
            tables.append(CountTable(("kommunekode", dim), cells, (("kommunekode",), (dim,), ()), measure))
    # One measure's tables must agree on shared cells (municipality totals): derive them from one base.
    for i in range(0, len(tables), 2):
        base, other = tables[i], tables[i + 1]
        totals = {k: sum(v for (kk, _), v in base.cells.items() if kk == k) for k in kommuner}
        cells = {}
        for k in kommuner:
            first = rng.randint(0, totals[k])
            cells[(k, "K")], cells[(k, "M")] = first, totals[k] - first
        tables[i + 1] = CountTable(other.dims, cells, other.margins, other.measure)
    together = suppress(tables, min_count=5)
    apart = []
    for i in range(0, len(tables), 2):
        apart += suppress(tables[i : i + 2], min_count=5)
    assert [t.decisions for t in together] == [t.decisions for t in apart]


def test_indicator_index_equals_filtering() -> None:
    units = make_units()
    pub = build_publication("r1", "kl_core", strata_info(units), tallies(units), [])
    for q in (None, "q1", "q13", "q99"):
        for dim in (None, *DIMENSIONS):
            for k in (None, "national", "101", "751"):
                wanted = [r for r in pub.indicator_rows if (q is None or r["question"] == q)
                          and (dim is None or r["dimension"] == dim) and (k is None or r["kommunekode"] == k)]
                assert pub.indicators(q, dim, k) == wanted


def grouped(answer_counts) -> list[tuple]:
    """AnswerCount rows as the service loads them: one row per (stratum, dimension, level,
    question) with the counts in CODES order."""
    out: dict[tuple, list[int]] = {}
    for a in answer_counts:
        out.setdefault((a.stratum, a.dimension, a.level, a.question), [0] * len(CODES))[CODES.index(a.code)] += a.n
    return [(*key, tuple(counts)) for key, counts in out.items()]


@pytest.mark.parametrize("seed", range(4))
def test_publication_depends_only_on_the_counts(seed) -> None:
    """Grouped rows (the service's load) or one AnswerCount per code, in any order: the same
    rows, to the last bit, which is what lets a replay rebuild exactly the same tables."""
    units = make_units(seed)
    info, answers = strata_info(units), tallies(units)
    reference = build_publication("r1", "kl_core", info, answers, [], min_count=5).indicator_rows
    shuffled = grouped(answers)
    random.Random(seed).shuffle(shuffled)
    assert build_publication("r1", "kl_core", info, shuffled, [], min_count=5).indicator_rows == reference
    split = [AnswerCount(a.stratum, a.dimension, a.level, a.question, a.code, n) for a in answers for n in (1,) * a.n]
    random.Random(seed + 1).shuffle(split)
    assert build_publication("r1", "kl_core", info, split, [], min_count=5).indicator_rows == reference


def valid_tables(units, question: str) -> list[CountTable]:
    """The count tables of one question straight from the units: valid (scale) answers per
    municipality x level of each dimension, as the publication must suppress them."""
    kommune_of = {h: k for h, (k, _, _) in STRATA.items()}
    group_of = {h: g for h, (_, g, _) in STRATA.items()}
    kommuner = sorted({kommune_of[u["stratum"]] for u in units})
    tables = []
    for dim in DIMENSIONS:
        def level(u):
            return group_of[u["stratum"]] if dim == "maalgruppe" else u[dim]
        levels = sorted({level(u) for u in units if answer_code(u["answers"].get(question)) is not None})
        cells = {(k, lvl): 0 for k in kommuner for lvl in levels}
        for u in units:
            code = answer_code(u["answers"].get(question))
            if code is not None and code != DONT_KNOW:
                cells[(kommune_of[u["stratum"]], level(u))] += 1
        tables.append(CountTable(("kommunekode", dim), cells, (("kommunekode",), (dim,), ()), f"valid:{question}"))
    return tables


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("min_count", [1, 5, 12])
def test_every_row_carries_its_cells_suppression_decision(seed, min_count) -> None:
    """The publication lays its decisions out in arrays of its own: each row's status, count
    and caution flag equal suppress() run on the question's tables counted from the units."""
    units = make_units(seed)
    pub = build_publication("r1", "kl_core", strata_info(units), tallies(units), [], min_count=min_count, caution_below=20)
    for question in ("q1", "q13"):
        expected = {}
        for dim, table in zip(DIMENSIONS, suppress(valid_tables(units, question), min_count=min_count, caution_below=20)):
            for (k, lvl), decision in table.decisions.items():
                expected[(dim, "national" if k is TOTAL else k, "total" if lvl is TOTAL else lvl)] = decision
        rows = pub.indicators(question)
        assert {(r["dimension"], r["kommunekode"], r["level"]) for r in rows} == set(expected)
        for r in rows:
            decision = expected[(r["dimension"], r["kommunekode"], r["level"])]
            assert (r["suppressed"], r["suppression"], r["caution"]) == (decision.suppressed, decision.status.value, decision.caution)
            assert r["n_valid"] == (None if decision.suppressed else decision.count)


def test_a_publication_crosses_a_process_boundary_unchanged() -> None:
    """What the builder process sends: the rows read on the other side are the rows built,
    and a publication already read sends none of what its readers made."""
    units = make_units(3)
    pub = build_publication("r1", "kl_core", strata_info(units), tallies(units), [RateCount("101:Dagpenge", "101", "Dagpenge", "A", 9, 6)])
    before = pickle.dumps(pub)
    rows, selection = pub.indicator_rows, pub.indicators("q1", "gender", "101")
    assert pickle.dumps(pub) == before
    copy = pickle.loads(before)
    assert copy == pub and copy.indicator_rows == rows and copy.indicators("q1", "gender", "101") == selection
    assert copy.rate_rows == pub.rate_rows and copy.questions() == ["q1", "q13"]
    assert all(isinstance(r["n_answers"], int | None) and isinstance(r["mean"], float | None) for r in copy.indicator_rows)
