"""The count-based publication against the domain's unit-level estimators and the attacker."""

from __future__ import annotations

import math
import pickle
import random
from collections import Counter

import pytest

from services.analytics.domain import AGREEMENT_SCALE, PublishedTable, StratifiedDesign, cell_indicators, find_recoverable_cells
from services.analytics.domain.answers import CODES, DONT_KNOW, answer_code, scale_label
from services.analytics.domain.count_estimates import (
    PROPORTIONS,
    WEIGHTED_SUFFIXES,
    StratumInfo,
    cell_estimates,
    design_strata,
    estimate_cells,
)
from services.analytics.domain.indicators import INDICATORS
from services.analytics.domain.publication import DIMENSIONS, RESPONDENTS, AnswerCount, RateCount, build_publication
from services.analytics.domain.suppression import TOTAL, CountTable, suppress
from services.analytics.domain.trends import change_between

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
    """The tallies as the builder gives them: answer codes per group, and the respondents."""
    counts = Counter()
    for u in units:
        counts[(u["stratum"], "total", "total", RESPONDENTS, "1")] += 1
        for dim in ("gender", "age_band", "duration_band"):
            counts[(u["stratum"], dim, u[dim], RESPONDENTS, "1")] += 1
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


def plain(values: list[float]) -> tuple[float, float] | None:
    """The unweighted figure as published: the base as a simple random sample, SE = s / sqrt(n)."""
    if not values:
        return None
    n = len(values)
    mean = math.fsum(values) / n
    return mean, (math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1) / n) if n > 1 else 0.0)


def test_estimates_equal_the_domain_design() -> None:
    """Every published figure against the domain's unit-level estimator: a cell weighted
    stratum by stratum against the round's design, a cell with suppressed strata against the
    design with those strata collapsed into one, a breakdown cell publishes no weighted figure,
    and the unweighted figures are the cell's own base as a simple random sample."""
    units = make_units()
    n = Counter(u["stratum"] for u in units)
    rates = [RateCount(h, k, g, "none", n[h] * 2, n[h]) for h, (k, g, _) in STRATA.items()]
    pub = build_publication("r1", "kl_core", strata_info(units), tallies(units), rates, min_count=5)
    hidden = {
        h for h, (k, g, _) in STRATA.items()
        if next(r for r in pub.rate_rows if r["dimension"] == "maalgruppe" and r["kommunekode"] == k and r["level"] == g)["suppressed"]
    }
    assert hidden, "the round must have suppressed strata for the pooled cells to be checked"
    seen = Counter()
    for row in pub.indicator_rows:
        if row["suppressed"] or row["few_answers"]:
            continue
        k, dim, lvl = row["kommunekode"], row["dimension"], row["level"]
        domain = [
            (k == "national" or STRATA[u["stratum"]][0] == k)
            and (lvl == "total" or (STRATA[u["stratum"]][1] if dim == "maalgruppe" else u[dim]) == lvl)
            for u in units
        ]
        labels = []
        for u in units:
            code = answer_code(u["answers"].get(row["question"]))
            labels.append(None if code is None else scale_label(code))
        seen[row["weighting"]] += 1
        codes = [answer_code(u["answers"].get(row["question"])) for u, inside in zip(units, domain) if inside]
        valid = [float(c) for c in codes if c is not None and c != DONT_KNOW]
        answered = [c for c in codes if c is not None]
        assert row["n_answers"] == len(answered) and row["n_valid"] == len(valid)
        unweighted = [("mean", plain(valid)), ("top2_share", plain([float(v >= 4) for v in valid])),
                      ("dont_know_share", plain([float(c == DONT_KNOW) for c in answered]))]
        unweighted += [(f"share_{s}", plain([float(c == str(s)) for c in answered])) for s in range(1, 6)]
        for ind, (value, se) in unweighted:
            assert math.isclose(row[f"{ind}_unweighted"], value, rel_tol=TOL, abs_tol=TOL), (row["question"], k, dim, lvl, ind)
            assert math.isclose(row[f"{ind}_unweighted_se"], se, rel_tol=TOL, abs_tol=TOL), (row["question"], k, dim, lvl, ind)
        if row["weighting"] == "unweighted":
            assert dim in ("gender", "age_band", "duration_band") and lvl != "total"
            assert all(row[f"{ind}{suffix}"] is None for ind in INDICATORS for suffix in WEIGHTED_SUFFIXES)
            continue
        # The cell's suppressed strata as one stratum of the design.
        inside_hidden = {u["stratum"] for u, inside in zip(units, domain) if inside} & hidden
        pooled = row["weighting"] == "strata_pooled"
        assert pooled == bool(inside_hidden)
        label = {h: ("pool" if h in inside_hidden else h) for h in STRATA}
        sizes = Counter()
        for h, (_, _, big_n) in STRATA.items():
            sizes[label[h]] += big_n
        design = StratifiedDesign([label[u["stratum"]] for u in units], population_sizes=dict(sizes))
        ref = cell_indicators(design, labels, domain)
        pairs = [("mean", ref.weighted.mean_score), ("top2_share", ref.weighted.top_box_share),
                 ("dont_know_share", ref.weighted.dont_know_share)]
        pairs += [(f"share_{s}", ref.weighted.distribution[AGREEMENT_SCALE.labels[s - 1]]) for s in range(1, 6)]
        for ind, w in pairs:
            for ours, theirs in ((row[ind], w.value), (row[f"{ind}_se"], w.se), (row[f"{ind}_ci_low"], w.ci_low),
                                 (row[f"{ind}_ci_high"], w.ci_high), (row[f"{ind}_population"], w.weighted_n)):
                assert math.isclose(ours, theirs, rel_tol=TOL, abs_tol=TOL), (row["question"], k, dim, lvl, ind)
            for ours, theirs in ((row[f"{ind}_deff"], w.deff), (row[f"{ind}_n_effective"], w.n_effective)):
                assert (ours is None) == (theirs is None), (row["question"], k, dim, lvl, ind, ours, theirs)
                assert ours is None or math.isclose(ours, theirs, rel_tol=TOL), (row["question"], k, dim, lvl, ind)
            seen["deff"] += row[f"{ind}_deff"] is not None
            if ind in PROPORTIONS:
                assert 0.0 <= row[f"{ind}_ci_low"] <= row[ind] <= row[f"{ind}_ci_high"] <= 1.0
    assert seen["strata"] > 10 and seen["strata_pooled"] >= 2 and seen["unweighted"] > 10 and seen["deff"] > 50, seen


def published_tables(pub) -> list[PublishedTable]:
    """Rebuild what a reader sees as the attacker's tables (hidden entries as None): the
    respondents of every table (one measure: the same people in every question and the
    response rates) and each question's answer counts."""
    def key(r):
        return (TOTAL if r["kommunekode"] == "national" else r["kommunekode"], TOTAL if r["level"] == "total" else r["level"])

    tables = []
    for q in pub.questions():
        for dim in DIMENSIONS:
            rows = [r for r in pub.indicator_rows if r["question"] == q and r["dimension"] == dim]
            tables.append(PublishedTable(("kommunekode", dim), {key(r): r["n_respondents"] for r in rows}, "respondents"))
            for column in ("n_valid", "n_answers"):
                tables.append(PublishedTable(("kommunekode", dim), {key(r): r[column] for r in rows}, f"{column}:{q}"))
    for dim in ("maalgruppe", "arm"):
        rows = [r for r in pub.rate_rows if r["dimension"] == dim]
        tables.append(PublishedTable(("kommunekode", dim), {key(r): r["answers"] for r in rows}, "respondents"))
    return tables


def test_small_cells_are_suppressed_and_not_recoverable() -> None:
    units = make_units()
    n = Counter(u["stratum"] for u in units)
    # Two dispatch arms, each stratum's invited split between them.
    rates = [RateCount(h, k, g, arm, n[h] * 3 // 2 + 1, n[h] // 2 + (arm == "A") * (n[h] % 2))
             for h, (k, g, _) in STRATA.items() for arm in ("A", "B")]
    pub = build_publication("r1", "kl_core", strata_info(units), tallies(units), rates)
    hidden = [r for r in pub.indicator_rows if r["suppressed"]]
    assert hidden and all(r["mean"] is None and r["n_answers"] is None and r["n_respondents"] is None for r in hidden)
    # A hidden cell publishes none of its figures, the population, design effect and effective
    # sample size of its estimates included.
    figures = [c for c in pub.indicator_rows[0] if c.startswith(INDICATORS) and c not in ("dimension",)]
    assert any(c.endswith("_population") for c in figures) and any(c.endswith("_deff") for c in figures)
    assert all(r[c] is None for r in hidden for c in figures)
    # Published: at least 5 respondents, or a known zero (a stratum nobody was invited from).
    assert all(r["n_respondents"] >= 5 or (r["n_respondents"] == 0 and r["kommunekode"] == "751")
               for r in pub.indicator_rows if not r["suppressed"])
    few = [r for r in pub.indicator_rows if r["few_answers"]]
    assert all(r["n_valid"] < 5 and r["mean"] is None and r["mean_unweighted"] is None for r in few)
    assert all(r["caution"] == (r["n_respondents"] < 20) for r in pub.indicator_rows if not r["suppressed"])
    assert "suppression" not in pub.indicator_rows[0] and "suppression" not in pub.rate_rows[0]
    assert find_recoverable_cells(published_tables(pub)) == {}
    assert any(r["suppressed"] for r in pub.rate_rows)
    # One decision for every table: a cell is hidden in every question and the rates alike.
    status = {(r["dimension"], r["kommunekode"], r["level"]): r["suppressed"] for r in pub.rate_rows if r["dimension"] == "maalgruppe"}
    checked = 0
    for r in pub.indicator_rows:
        key = (r["dimension"], r["kommunekode"], r["level"])
        if key in status:
            assert r["suppressed"] == status[key]
            checked += 1
    assert checked >= len(status) * len(pub.questions())


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
    cells = []
    for _ in range(200):
        chosen = rng.sample(sorted(strata), rng.randint(1, 4))
        cells.append({h: {c: rng.choice([0, 0, 1, 2, 7]) for c in CODES} for h in chosen})
    cells.append({"a": {"dk": 3}})  # "ved ikke" only: no mean
    cells.append({"b": {"4": 1}})
    got = estimate_cells(cells, design)
    for cell, row in zip(cells, got):
        ref = cell_estimates(cell, design, 0)
        assert (row["n_answers"], row["n_valid"], row["n_dont_know"]) == (ref.n_answers, ref.n_valid, ref.n_dont_know)
        for ind in INDICATORS:
            for suffix, est, attr in (("", ref.weighted[ind], "value"), ("_se", ref.weighted[ind], "se"),
                                      ("_ci_low", ref.weighted[ind], "ci_low"), ("_ci_high", ref.weighted[ind], "ci_high"),
                                      ("_population", ref.weighted[ind], "weighted_n"), ("_deff", ref.weighted[ind], "deff"),
                                      ("_n_effective", ref.weighted[ind], "n_effective"),
                                      ("_unweighted", ref.unweighted[ind], "value"), ("_unweighted_se", ref.unweighted[ind], "se")):
                if est is None or getattr(est, attr) is None:
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


def respondent_tables(units) -> list[CountTable]:
    """The respondent tables straight from the units: people per municipality x level of each
    dimension, as the publication must suppress them (one measure for every table)."""
    kommune_of = {h: k for h, (k, _, _) in STRATA.items()}
    group_of = {h: g for h, (_, g, _) in STRATA.items()}
    kommuner = sorted({k for k, _, _ in STRATA.values()})
    tables = []
    for dim in DIMENSIONS:
        def level(u):
            return group_of[u["stratum"]] if dim == "maalgruppe" else u[dim]
        levels = sorted({level(u) for u in units} | ({g for _, g, _ in STRATA.values()} if dim == "maalgruppe" else set()))
        cells = {(k, lvl): 0 for k in kommuner for lvl in levels}
        for u in units:
            cells[(kommune_of[u["stratum"]], level(u))] += 1
        tables.append(CountTable(("kommunekode", dim), cells, (("kommunekode",), (dim,), ()), "respondents"))
    return tables


def answer_breakdowns(units) -> dict[str, list[dict]]:
    """Per question, per respondent table: the answers per code of each interior cell (what a
    published cell shows besides its respondents), counted from the units."""
    kommune_of = {h: k for h, (k, _, _) in STRATA.items()}
    group_of = {h: g for h, (_, g, _) in STRATA.items()}
    out: dict[str, list[dict]] = {}
    for q in ("q1", "q13"):
        tables = []
        for dim in DIMENSIONS:
            cells: dict[tuple, list[int]] = {}
            for u in units:
                code = answer_code(u["answers"][q])
                if code is None:
                    continue
                key = (kommune_of[u["stratum"]], group_of[u["stratum"]] if dim == "maalgruppe" else u[dim])
                cells.setdefault(key, [0] * len(CODES))[CODES.index(code)] += 1
            tables.append(cells)
        out[q] = tables
    return out


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("min_count", [1, 5, 12])
def test_every_row_carries_its_cells_suppression_decision(seed, min_count) -> None:
    """The publication lays its decisions out in arrays of its own: each row's status,
    respondents and caution flag equal suppress() run on the respondent tables counted from the
    units, with every question's answers per code as breakdowns, for every question alike."""
    units = make_units(seed)
    pub = build_publication("r1", "kl_core", strata_info(units), tallies(units), [], min_count=min_count, caution_below=20)
    expected = {}
    decisions = suppress(respondent_tables(units), min_count=min_count, caution_below=20, breakdowns=answer_breakdowns(units))
    for dim, table in zip(DIMENSIONS, decisions):
        for (k, lvl), decision in table.decisions.items():
            expected[(dim, "national" if k is TOTAL else k, "total" if lvl is TOTAL else lvl)] = decision
    for question in ("q1", "q13"):
        rows = pub.indicators(question)
        assert {(r["dimension"], r["kommunekode"], r["level"]) for r in rows} == set(expected)
        for r in rows:
            decision = expected[(r["dimension"], r["kommunekode"], r["level"])]
            assert (r["suppressed"], r["caution"]) == (decision.suppressed, decision.caution)
            assert r["n_respondents"] == (None if decision.suppressed else decision.count)
            assert r["few_answers"] == (not decision.suppressed and r["n_valid"] < min_count)


def test_a_publication_crosses_a_process_boundary_unchanged() -> None:
    """What the builder process sends: the rows read on the other side are the rows built,
    and a publication already read sends none of what its readers made."""
    units = make_units(3)
    n = Counter(u["stratum"] for u in units)
    rates = [RateCount(h, k, g, "A", n[h] + 3, n[h]) for h, (k, g, _) in STRATA.items()]
    pub = build_publication("r1", "kl_core", strata_info(units), tallies(units), rates)
    before = pickle.dumps(pub)
    rows, selection = pub.indicator_rows, pub.indicators("q1", "gender", "101")
    assert pickle.dumps(pub) == before
    copy = pickle.loads(before)
    assert copy == pub and copy.indicator_rows == rows and copy.indicators("q1", "gender", "101") == selection
    assert copy.rate_rows == pub.rate_rows and copy.questions() == ["q1", "q13"]
    assert all(isinstance(r["n_answers"], int | None) and isinstance(r["mean"], float | None) for r in copy.indicator_rows)
