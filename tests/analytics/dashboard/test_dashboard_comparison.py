"""Comparable municipalities and the composition-adjusted score: the model against independent
computations (unit-level normal equations in numpy, R's lm), the comparison group against the
demo round's events, the pages and the deck against each other and the API."""

from __future__ import annotations

import asyncio
import csv
import io
import math
import shutil
import subprocess
from collections import defaultdict

import numpy as np
import pytest
import sqlalchemy as sa
from pptx import Presentation

from dashboard_helpers import KOMMUNER, QUESTIONS, Tables, demo_round
from services.analytics.dashboard import comparison
from services.analytics.dashboard.texts import question_label
from services.analytics.domain.answers import answer_code
from services.analytics.domain.publication import StratumInfo, design_strata
from services.analytics.models import PopulationCell
from shared.testing.fixtures import bearer, publish_events

R = "2026-1"
BANDS = ("maalgruppe", "gender", "age_band", "duration_band")


# -- the model on small cases ----------------------------------------------------------------------------


def small_case(seed: int = 3):
    """Grouped rows (bands, y, weight) with all four variables, unbalanced, plus unit-level rows."""
    rng = np.random.default_rng(seed)
    groups, genders, ages, durations = ("a", "b", "c"), ("K", "M"), ("18-29", "30-39", "50+"), ("<6", "12+")
    effect = {"a": 0.0, "b": -0.6, "c": 0.4, "K": 0.1, "M": 0.0, "18-29": -0.3, "30-39": 0.0, "50+": 0.5, "<6": 0.2, "12+": -0.2}
    rows, units = [], []
    for _ in range(160):
        bands = (rng.choice(groups, p=[0.5, 0.3, 0.2]), rng.choice(genders), rng.choice(ages), rng.choice(durations))
        mean = 3.2 + sum(effect[b] for b in bands)
        y = float(min(5, max(1, round(mean + rng.normal(0, 1)))))
        w = float(rng.choice([1.0, 2.5, 4.0]))
        count = int(rng.integers(1, 4))
        rows.append((tuple(str(b) for b in bands), y, w * count))
        units += [(tuple(str(b) for b in bands), y, w)] * count
    return rows, units


def test_weighted_least_squares_equals_unit_level_normal_equations():
    rows, units = small_case()
    beta, columns, reference, fitted = comparison.fit(rows)
    # independent: one row per respondent, dummies built here, X'WX b = X'Wy solved directly
    levels = {i: sorted({u[0][i] for u in units}) for i in range(4)}
    names = [(i, lvl) for i in range(4) for lvl in levels[i][1:]]
    x = np.array([[1.0] + [1.0 if u[0][i] == lvl else 0.0 for i, lvl in names] for u in units])
    w = np.array([u[2] for u in units])
    y = np.array([u[1] for u in units])
    expected = np.linalg.solve(x.T @ (w[:, None] * x), x.T @ (w * y))
    assert [c[1] for c in columns] == [lvl for _, lvl in names]
    assert np.allclose(beta, expected, atol=1e-10)
    assert reference == {"maalgruppe": "a", "gender": "K", "age_band": "18-29", "duration_band": "12+"}
    # the weighted residuals sum to 0 (intercept): the national expected equals the national mean
    rw = np.array([r[2] for r in rows])
    assert math.isclose(float(np.sum(rw * fitted)), float(np.sum(rw * np.array([r[1] for r in rows]))), rel_tol=1e-12)


@pytest.mark.skipif(not shutil.which("Rscript"), reason="needs R (apt-get install r-base-core)")
def test_weighted_least_squares_equals_r_lm(tmp_path):
    rows, _ = small_case(seed=11)
    beta, columns, reference, fitted = comparison.fit(rows)
    path = tmp_path / "rows.csv"
    with path.open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["g", "s", "a", "d", "y", "w"])
        for bands, y, w in rows:
            out.writerow([*bands, y, w])
    # the same reference levels as ours (R would sort by locale)
    ref = "".join(f"d${v} <- relevel(factor(d${v}), ref='{lvl}');" for v, lvl in zip("gsad", reference.values()))
    script = (f"d <- read.csv('{path}', colClasses=c('character','character','character','character','numeric','numeric'));{ref}"
              "m <- lm(y ~ g + s + a + d, data=d, weights=w); write.csv(data.frame(f=fitted(m)), stdout(), row.names=FALSE);"
              "cat('COEF', format(coef(m), digits=17), '\\n')")
    result = subprocess.run(["Rscript", "-e", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    r_fitted = [float(v) for v in lines[1:1 + len(rows)]]
    assert np.allclose(fitted, r_fitted, atol=1e-9)
    coef_line = next(line for line in lines if line.startswith("COEF"))
    r_beta = [float(v) for v in coef_line.split()[1:]]
    # R orders the other levels by locale too: compare the coefficients as a set of (level, value)
    assert math.isclose(beta[0], r_beta[0], abs_tol=1e-9)
    assert sorted(round(b, 8) for b in beta[1:]) == sorted(round(b, 8) for b in r_beta[1:])


def test_one_variable_reduces_to_classic_indirect_standardisation():
    """When only the target group varies, E_k at a municipality's frame mix is sum_l p_kl *
    (national mean of l), the textbook formula."""
    strata = {"1:a": StratumInfo("1", "a", 10, 40), "1:b": StratumInfo("1", "b", 10, 10),
              "2:a": StratumInfo("2", "a", 10, 10), "2:b": StratumInfo("2", "b", 10, 30)}
    answers = {"1:a": {"4": 6, "5": 4}, "1:b": {"2": 5, "3": 5}, "2:a": {"3": 5, "5": 5}, "2:b": {"1": 4, "3": 6}}
    cells = [comparison.Cell(h, h.split(":")[0], (h.split(":")[1], "K", "30-39", "<6"), code, n)
             for h, codes in answers.items() for code, n in codes.items()]
    data = comparison.RoundData(R, 1, strata, design_strata(strata), 40, 36, {"q1": cells}, ["1", "2"])
    adj = comparison.adjustment(data, "q1")
    w = {h: s.population / s.respondents for h, s in strata.items()}
    group_mean = {}
    for g in "ab":
        num = sum(w[h] * int(c) * n for h, codes in answers.items() if h.endswith(g) for c, n in codes.items())
        den = sum(w[h] * n for h, codes in answers.items() if h.endswith(g) for n in codes.values())
        group_mean[g] = num / den
    one_level = {"gender": {"K": 10}, "age_band": {"30-39": 10}, "duration_band": {"<6": 10}}
    mixes = comparison.composition(data, {k: one_level for k in "12"})
    expected = {}
    for k in "12":
        share = {g: strata[f"{k}:{g}"].population / sum(strata[f"{k}:{x}"].population for x in "ab") for g in "ab"}
        assert mixes[k]["maalgruppe"] == pytest.approx(share, rel=1e-12)
        expected[k] = adj.expected(mixes[k])
        assert math.isclose(expected[k], sum(share[g] * group_mean[g] for g in "ab"), rel_tol=1e-12)
    # Municipality 1 has many in the high-scoring group a: more is expected of it than of 2.
    assert expected["1"] > expected["2"]
    # A municipality with a suppressed level has no composition (no adjusted score, no neighbours).
    assert "1" not in comparison.composition(data, {"1": {"gender": {"K": None, "M": 4}}})


def test_comparable_municipalities_are_the_nearest_by_composition_or_a_fixed_group():
    def mix(a_share, k_share):
        return {"maalgruppe": {"a": a_share, "b": 1 - a_share}, "gender": {"K": k_share, "M": 1 - k_share},
                "age_band": {"x": 1.0}, "duration_band": {"y": 1.0}}

    comps = {"1": mix(0.8, 0.5), "2": mix(0.75, 0.5), "3": mix(0.2, 0.5), "4": mix(0.8, 0.3), "5": mix(0.5, 0.5)}
    cfg = {"method": "composition", "variables": {d: 1.0 for d in BANDS}, "neighbours": 2, "min_members": 2}
    found = comparison.comparable(comps, "1", cfg)
    # distances: 2 -> 0.05/4, 4 -> 0.2/4, 5 -> 0.3/4, 3 -> 0.6/4
    assert found.kommuner == ["2", "4"] and math.isclose(found.members[0][1], 0.0125) and found.enough
    assert comparison.comparable(comps, "1", cfg | {"neighbours": 1}).enough is False
    groups = cfg | {"method": "groups", "groups": [{"id": "k1", "name": {"da": "Klynge 1"}, "kommuner": ["1", "3", "5"]}]}
    fixed = comparison.comparable(comps, "3", groups)
    assert fixed.kommuner == ["1", "5"] and fixed.group_name == {"da": "Klynge 1"}
    assert comparison.comparable(comps, "2", groups).enough is False
    # the shipped definition is data and says what it does
    shipped = comparison.config()
    assert shipped["method"] == "composition" and set(shipped["variables"]) == set(BANDS) and shipped["description"]["da"]


def test_comparison_group_figure_is_suppressed_like_a_cell():
    strata = {"1:a": StratumInfo("1", "a", 3, 10), "2:a": StratumInfo("2", "a", 30, 60)}
    cells = [comparison.Cell("1:a", "1", ("a", "K", "x", "y"), "4", 3), comparison.Cell("2:a", "2", ("a", "K", "x", "y"), "5", 30)]
    data = comparison.RoundData(R, 1, strata, design_strata(strata), 33, 31, {"q1": cells}, ["1", "2"])
    assert comparison.group_cell(data, "q1", ["1"], False, 5, 20).suppression == "primary"
    assert comparison.group_cell(data, "q1", ["1", "2"], True, 5, 20).suppression == "secondary"
    ok = comparison.group_cell(data, "q1", ["1", "2"], False, 5, 20)
    assert not ok.suppressed and not ok.caution and math.isclose(ok.mean, (10 / 3 * 4 * 3 + 2 * 5 * 30) / (10 + 60))
    # With both strata suppressed in the publication they are one weighting class: N = 70, n = 33.
    pooled = comparison.group_cell(data, "q1", ["1", "2"], False, 5, 20, hidden={("1", "a"), ("2", "a")})
    assert math.isclose(pooled.mean, (4 * 3 + 5 * 30) / 33)


# -- against the demo round -----------------------------------------------------------------------------


def unit_level(round_id: str, question: str):
    """(kommune, stratum, bands, y, w) per respondent with a scale answer, from the demo events."""
    rnd, responses = demo_round(round_id)
    n_h: dict[str, int] = defaultdict(int)
    for r in responses:
        n_h[r.stratum] += 1
    out = []
    for r in responses:
        code = answer_code(r.answers.get(question))
        if code is not None and code != "dk":
            w = max(rnd.population[r.stratum], n_h[r.stratum]) / n_h[r.stratum]
            out.append((r.kommunekode, r.stratum, (r.maalgruppe, r.bands.gender, r.bands.age_band, r.bands.duration_band), float(code), w))
    return out


def pooled_group_mean(question: str, members: tuple[str, ...], hidden: set[str]) -> float:
    """The group's weighted mean from the demo events, its suppressed strata (``hidden``) one
    weighting class (N and n summed)."""
    rnd, responses = demo_round(R)
    n_h = defaultdict(int)
    for r in responses:
        n_h[r.stratum] += 1
    units = [u for u in unit_level(R, question) if u[0] in members]
    pool_w = sum(rnd.population[h] for h in hidden) / sum(n_h[h] for h in hidden) if hidden else 0.0
    weights = [pool_w if u[1] in hidden else u[4] for u in units]
    return sum(w * u[3] for w, u in zip(weights, units)) / sum(weights)


async def hidden_strata(client, headers, question: str, members: tuple[str, ...]) -> set[str]:
    rows = (await client.get(f"/rounds/{R}/indicators", params={"question": question, "dimension": "maalgruppe"}, headers=headers)).json()["rows"]
    return {f"{r['kommunekode']}:{r['level']}" for r in rows if r["kommunekode"] in members and r["level"] != "total" and r["suppressed"]}


async def test_group_figure_for_one_municipality_equals_the_published_cell(app, client, tokens):
    async with app.state.runtime.uow() as uow:
        release = await app.state.releases.latest(uow, R)
    publication = release.publication
    data = await comparison.round_data(app.state.runtime.uow, R, release.info.version)
    totals = {(r["question"], r["kommunekode"]): r for r in publication.indicator_rows
              if r["dimension"] == "maalgruppe" and r["level"] == "total"}
    checked = 0
    for (q, k), row in totals.items():
        if k == "national" or row["suppressed"] or row["mean"] is None:
            continue
        hidden = {(k, r["level"]) for r in publication.indicators(q, "maalgruppe", k) if r["suppressed"]}
        cell = comparison.group_cell(data, q, [k], False, 5, 20, hidden)
        assert math.isclose(cell.mean, row["mean"], rel_tol=1e-12) and math.isclose(cell.se, row["mean_se"], rel_tol=1e-9)
        checked += 1
    assert checked >= 3
    # The mix is the population's (frame.margins), every variable, for every municipality:
    # published or suppressed respondents play no part.
    respondents = {}
    for r in publication.indicators(publication.questions()[0]):
        if r["kommunekode"] != "national" and r["level"] != "total" and r["dimension"] != "maalgruppe":
            respondents.setdefault(r["kommunekode"], {}).setdefault(r["dimension"], {})[r["level"]] = r["n_respondents"]
    mix = comparison.composition(data, respondents)
    rnd, _ = demo_round(R)
    assert set(mix) == set(KOMMUNER)
    for k in KOMMUNER:
        assert mix[k] == population_mix(rnd, k)
        pops = {h.split(":")[1]: n for h, n in rnd.population.items() if h.startswith(f"{k}:")}
        for g, n in pops.items():
            assert math.isclose(mix[k]["maalgruppe"][g], n / sum(pops.values()), rel_tol=1e-12)
    # ... and it differs from the respondents' mix (the population leans older, the answers do not).
    k = KOMMUNER[0]
    people = respondents[k]["age_band"]
    assert None not in people.values()
    assert max(abs(mix[k]["age_band"][lvl] - n / sum(people.values())) for lvl, n in people.items()) > 0.05


def population_mix(rnd, kommune: str) -> dict[str, dict[str, float]]:
    """Shares per variable of the municipality's population, from the demo round's frame.margins."""
    counts: dict[str, dict[str, int]] = {d: defaultdict(int) for d in BANDS}
    for event in rnd.margins:
        if event.kommunekode == kommune:
            for c in event.cells:
                for dim, lvl in zip(BANDS, (c.maalgruppe, c.bands.gender, c.bands.age_band, c.bands.duration_band)):
                    counts[dim][lvl] += c.population
    return {d: {lvl: n / sum(levels.values()) for lvl, n in levels.items()} for d, levels in counts.items()}


async def test_fair_page_numbers_equal_independent_computation(client, tokens):
    """The fair comparison from published figures and an independent fit: E_k is the unit-level
    model's prediction at the municipality's population mix (frame.margins), adjusted =
    published national + published raw - E_k, and the group's figure weights the members'
    suppressed strata as one class."""
    kl = bearer(tokens["kl"])
    units = unit_level(R, "q13")
    # independent: unit-level dummies and normal equations
    levels = [sorted({u[2][i] for u in units}) for i in range(4)]
    x = np.array([[1.0] + [1.0 if u[2][i] == lvl else 0.0 for i in range(4) for lvl in levels[i][1:]] for u in units])
    w = np.array([u[4] for u in units])
    y = np.array([u[3] for u in units])
    beta = np.linalg.solve(x.T @ (w[:, None] * x), x.T @ (w * y))
    api = (await client.get(f"/rounds/{R}/indicators", params={"question": "q13"}, headers=kl)).json()["rows"]
    cell = {(r["dimension"], r["kommunekode"], r["level"]): r for r in api}
    rnd, _ = demo_round(R)
    population = population_mix(rnd, "751")
    mix = [population[dim] for dim in BANDS]
    expected = beta[0] + sum(share.get(lvl, 0.0) * b for share, lvl, b in zip(
        [m for i, m in enumerate(mix) for _ in levels[i][1:]], [lvl for i in range(4) for lvl in levels[i][1:]], beta[1:]))
    observed, national = cell[("maalgruppe", "751", "total")]["mean"], cell[("maalgruppe", "national", "total")]["mean"]
    # The group: 101 and 147, their suppressed strata as one weighting class.
    group = pooled_group_mean("q13", ("101", "147"), await hidden_strata(client, kl, "q13", ("101", "147")))

    r = await client.get(f"/dashboard/r/{R}/k/751/fair", params={"question": "q13"}, headers=kl)
    assert r.status_code == 200 and "indirekte standardisering" in r.text
    raw_v, expected_v, adjusted_v, group_v, national_v = (float(v) for v in Tables(r.text).values["fair"])
    assert math.isclose(raw_v, observed, rel_tol=1e-12)
    assert math.isclose(expected_v, expected, rel_tol=1e-9)
    assert math.isclose(adjusted_v, national + observed - expected, rel_tol=1e-9)
    assert math.isclose(group_v, group, rel_tol=1e-12)
    assert math.isclose(national_v, national, rel_tol=1e-12)
    effects = Tables(r.text).tables["effects"]
    assert effects[1][1].startswith("0 (reference") and len(effects) == 1 + sum(len(lv) for lv in levels)

    # the chart's table and the PowerPoint slide carry the same four figures
    r = await client.get(f"/dashboard/r/{R}/k/751/chart/fair-q13.pptx", headers=kl)
    deck = Presentation(io.BytesIO(r.content))
    chart = next(s.chart for s in deck.slides[0].shapes if s.has_chart)
    values = list(chart.plots[0].series[0].values)
    assert list(chart.plots[0].categories) == ["Rå score", "Justeret score", "Sammenlignelige kommuner", "Hele landet"]
    for got, want in zip(values, (raw_v, adjusted_v, group_v, national_v)):
        assert math.isclose(got, want, rel_tol=1e-12)


async def test_compare_page_lists_the_group_and_its_figures(client, tokens):
    aarhus = bearer(tokens["aarhus"])
    r = await client.get(f"/dashboard/r/{R}/k/751/compare", headers=aarhus)
    assert r.status_code == 200, r.text
    page = Tables(r.text)
    assert sorted(row[0] for row in page.tables["members"][1:]) == ["Frederiksberg", "København"]
    table = page.tables["compare"]
    assert table[0] == ["", "Aarhus", "Sammenlignelige kommuner", "Hele landet"]
    by_label = {question_label(q, "da"): q for q in QUESTIONS}
    for row in table[1:]:
        q = by_label[row[0]]
        want = pooled_group_mean(q, ("101", "147"), await hidden_strata(client, bearer(tokens["kl"]), q, ("101", "147")))
        assert math.isclose(float(row[2].split()[0].replace(",", ".")), want, abs_tol=0.005001), (q, row)
    assert "forskelsindeks" in r.text and "Sammensætning" in r.text
    assert (await client.get(f"/dashboard/r/{R}/k/101/compare", headers=aarhus)).status_code == 403
    assert (await client.get(f"/dashboard/r/{R}/k/national/compare", headers=bearer(tokens["kl"]))).status_code == 404


async def test_round_deck_carries_comparable_and_adjusted_figures(client, tokens):
    kl = bearer(tokens["kl"])
    deck = Presentation(io.BytesIO((await client.get(f"/dashboard/r/{R}/k/147/report.pptx", headers=kl)).content))
    charts = {s.shapes.title.text: next(x.chart for x in s.shapes if x.has_chart) for s in deck.slides if any(x.has_chart for x in s.shapes)}
    compare = next(c for title, c in charts.items() if "sammenlignelige" in title.lower() and "Fair" not in title)
    page = Tables((await client.get(f"/dashboard/r/{R}/k/147/compare", headers=kl)).text).tables["compare"]
    series = {s.name: list(s.values) for s in compare.plots[0].series}
    for i, row in enumerate(page[1:]):
        for j, name in enumerate(page[0][1:]):
            got = series[name][i]
            shown = row[1 + j]
            assert (got is None) == shown.startswith("—"), (name, row)
            if got is not None:
                assert math.isclose(got, float(shown.split()[0].replace(",", ".")), abs_tol=0.005001)
    fair = next(c for title, c in charts.items() if title.startswith("Fair sammenligning"))
    values = [float(v) if v else None for v in Tables((await client.get(f"/dashboard/r/{R}/k/147/fair", headers=kl)).text).values["fair"]]
    got = list(fair.plots[0].series[0].values)
    want = [values[0], values[2], values[3], values[4]]
    for g, v in zip(got, want):
        assert (g is None and v is None) or math.isclose(g, v, rel_tol=1e-12)


async def test_population_cells_are_set_not_added_when_frame_margins_come_again(app, kafka_bootstrap, module_env):
    """frame.margins delivered twice (a relay's retry publishes a new envelope of the same
    chunk): the population cells hold the frame's counts once."""
    rnd, _ = demo_round(R)
    processed = sa.text("SELECT count(*) FROM analytics.processed_event")
    async with app.state.runtime.uow() as uow:
        before = await uow.session.scalar(processed)
    await publish_events(kafka_bootstrap, module_env["KAFKA_TOPIC_PREFIX"], rnd.margins)
    async with asyncio.timeout(30):
        while True:
            async with app.state.runtime.uow() as uow:
                if await uow.session.scalar(processed) >= before + len(rnd.margins):
                    break
            await asyncio.sleep(0.2)
    cell = PopulationCell
    async with app.state.runtime.uow() as uow:
        rows = (await uow.session.execute(
            sa.select(cell.kommunekode, cell.maalgruppe, cell.gender, cell.age_band, cell.duration_band, cell.population)
            .where(cell.round_id == R)
        )).all()
    expected = {(e.kommunekode, c.maalgruppe, c.bands.gender, c.bands.age_band, c.bands.duration_band): c.population
                for e in rnd.margins for c in e.cells}
    assert {tuple(r[:5]): r[5] for r in rows} == expected
