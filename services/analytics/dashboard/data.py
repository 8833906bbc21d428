"""What the dashboard shows, read from the same cached publication the API serves.

Nothing here estimates anything from answers: every figure is a published (already suppressed)
cell of ``RoundPublication.indicator_rows`` / ``rate_rows`` or a trend row of
``service.trends``. The two derived figures are documented where they are made: a theme score
(plain average of its questions' published means) and the directly standardised score of the
fair comparison (:func:`fair_comparison`).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from services.analytics.domain.publication import DIMENSIONS, NATIONAL, RoundPublication
from services.analytics.dashboard import texts as tx

OVERALL = "q13"
SHARE_CODES = ("5", "4", "3", "2", "1", "dk")


@dataclass(frozen=True)
class Point:
    """One published figure, or a suppressed one (value None, suppressed True)."""

    value: float | None
    ci_low: float | None = None
    ci_high: float | None = None
    n: int | None = None
    suppressed: bool = False
    caution: bool = False
    missing: bool = False  # no cell at all (e.g. a level nobody answered)

    @staticmethod
    def of(row: dict | None, indicator: str) -> Point:
        if row is None:
            return Point(None, missing=True)
        if row["suppressed"]:
            return Point(None, suppressed=True)
        return Point(row[indicator], row.get(f"{indicator}_ci_low"), row.get(f"{indicator}_ci_high"), row.get("n_valid"),
                     False, bool(row["caution"]))


@dataclass
class Series:
    name: str
    points: list[Point]

    @property
    def values(self) -> list[float | None]:
        return [p.value for p in self.points]


@dataclass
class ChartSpec:
    chart_id: str
    title: str
    categories: list[str]
    series: list[Series]
    kind: str = "bar"  # bar (vertical), barh (horizontal), line
    unit: str = "mean"  # mean (1..5) or share (0..1)
    target: float | None = None
    target_label: str | None = None
    notes: list[str] = field(default_factory=list)
    min_count: int = 5  # the publication's suppression threshold and caution limit, for the footnotes
    caution_below: int = 20

    def any_suppressed(self) -> bool:
        return any(p.suppressed for s in self.series for p in s.points)

    def any_caution(self) -> bool:
        return any(p.caution for s in self.series for p in s.points)


class Index:
    """Publication rows by (question, dimension, kommunekode, level)."""

    def __init__(self, publication: RoundPublication) -> None:
        self.publication = publication
        self.cells = {(r["question"], r["dimension"], r["kommunekode"], r["level"]): r for r in publication.indicator_rows}
        self.rates = {(r["dimension"], r["kommunekode"], r["level"]): r for r in publication.rate_rows}
        self.kommuner = sorted({r["kommunekode"] for r in publication.rate_rows} - {NATIONAL}, key=_natural)
        self.questions = publication.questions()
        self.levels = {d: sorted({r["level"] for r in publication.indicator_rows if r["dimension"] == d} - {"total"}, key=_natural)
                       for d in DIMENSIONS}

    def total(self, question: str, kommune: str) -> dict | None:
        return self.cells.get((question, "maalgruppe", kommune, "total"))

    def cell(self, question: str, dim: str, kommune: str, level: str) -> dict | None:
        return self.cells.get((question, dim, kommune, level))

    def rate(self, kommune: str) -> dict | None:
        return self.rates.get(("maalgruppe", kommune, "total"))


def _natural(text: str) -> tuple:
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", text))


_INDEXES: dict[int, Index] = {}


def index_of(publication: RoundPublication) -> Index:
    """Publications are immutable once cached; keep the index of the last few."""
    found = _INDEXES.get(id(publication))
    if found is None or found.publication is not publication:
        if len(_INDEXES) > 16:
            _INDEXES.clear()
        found = _INDEXES[id(publication)] = Index(publication)
    return found


def kommune_name(kommune: str, lang: str) -> str:
    return tx.texts(lang)["national"] if kommune == NATIONAL else f"{tx.texts(lang)['kommune']} {kommune}"


def _series_for(kommune: str, lang: str) -> list[str]:
    return [NATIONAL] if kommune == NATIONAL else [kommune, NATIONAL]


def target_for(targets: dict[tuple[str, str], float], question: str, unit: str) -> float | None:
    return targets.get((question, "mean" if unit == "mean" else "top2_share"))


# -- charts -----------------------------------------------------------------------------------------


def themes_chart(ix: Index, kommune: str, lang: str) -> ChartSpec:
    t = tx.texts(lang)
    series = []
    for k in _series_for(kommune, lang):
        points = []
        for theme in tx.themes():
            cells = [Point.of(ix.total(q["id"], k), "mean") for q in theme["questions"] if q["id"] in ix.questions]
            if not cells or any(c.value is None for c in cells):
                points.append(Point(None, suppressed=any(c.suppressed for c in cells), missing=not cells))
            else:
                points.append(Point(math.fsum(c.value for c in cells) / len(cells), n=min(c.n for c in cells),
                                    caution=any(c.caution for c in cells)))
        series.append(Series(kommune_name(k, lang), points))
    return ChartSpec("themes", t["themes"], [th["title"][lang] for th in tx.themes()], series, kind="barh", unit="mean",
                     notes=[t["theme_note"]])


def questions_chart(ix: Index, kommune: str, lang: str, targets: dict) -> ChartSpec:
    t = tx.texts(lang)
    series = [Series(kommune_name(k, lang), [Point.of(ix.total(q, k), "mean") for q in ix.questions]) for k in _series_for(kommune, lang)]
    return ChartSpec("questions", f"{t['mean']}: {t['questions'].lower()}", list(ix.questions), series, kind="bar", unit="mean")


def distribution_chart(ix: Index, kommune: str, question: str, lang: str) -> ChartSpec:
    t = tx.texts(lang)
    categories = [tx.code_label(question, c, lang) for c in SHARE_CODES]
    series = [
        Series(kommune_name(k, lang), [Point.of(ix.total(question, k), "dont_know_share" if c == "dk" else f"share_{c}") for c in SHARE_CODES])
        for k in _series_for(kommune, lang)
    ]
    return ChartSpec(f"dist-{question}", f"{t['distribution']}: {question}", categories, series, kind="barh", unit="share")


def breakdown_chart(ix: Index, kommune: str, question: str, dim: str, lang: str, targets: dict) -> ChartSpec:
    t = tx.texts(lang)
    levels = ["total", *ix.levels[dim]]
    series = [Series(kommune_name(k, lang), [Point.of(ix.cell(question, dim, k, lvl), "mean") for lvl in levels]) for k in _series_for(kommune, lang)]
    target = target_for(targets, question, "mean")
    return ChartSpec(f"bd-{dim}-{question}", f"{question} – {t['mean'].lower()} – {t[dim].lower()}",
                     [tx.level_label(lvl, lang) for lvl in levels], series, kind="bar", unit="mean", target=target,
                     target_label=None if target is None else t["target_line"].format(value=tx.fmt_number(target, lang, 1)))


def trend_chart(trend_rows: list[dict], rounds: list[str], kommune: str, question: str, lang: str, targets: dict) -> ChartSpec:
    t = tx.texts(lang)
    by_key = {(r["round_id"], r["kommunekode"]): r for r in trend_rows if r["question"] == question and r["indicator"] == "mean"}
    series = []
    for k in _series_for(kommune, lang):
        points = []
        for rnd in rounds:
            row = by_key.get((rnd, k))
            if row is None:
                points.append(Point(None, missing=True))
            elif row["value"] is None:
                points.append(Point(None, suppressed=True))
            else:
                points.append(Point(row["value"], row["value"] - 1.959963984540054 * row["se"], row["value"] + 1.959963984540054 * row["se"]))
        series.append(Series(kommune_name(k, lang), points))
    target = target_for(targets, question, "mean")
    return ChartSpec(f"trend-{question}", f"{t['trends']}: {question} – {t['mean'].lower()}", list(rounds), series, kind="line",
                     unit="mean", target=target,
                     target_label=None if target is None else t["target_line"].format(value=tx.fmt_number(target, lang, 1)))


# -- fair comparison --------------------------------------------------------------------------------


@dataclass
class Adjusted:
    dimension: str
    value: float | None
    se: float | None
    weights: dict[str, float]
    reason: str | None = None


def fair_comparison(ix: Index, kommune: str, question: str) -> tuple[Point, Point, list[Adjusted]]:
    """Direct standardisation, one background dimension at a time.

    For dimension d with levels l: the national respondent composition w_l = n_valid(national, l)
    / sum n_valid(national, .), and the municipality's published cell means m_kl. The adjusted
    score is sum_l w_l m_kl: the municipality's own results per group, weighted as if its
    respondents were composed like the country's. SE ~ sqrt(sum_l w_l^2 SE_kl^2) (cells treated
    as independent; they are, for the target group, whose cells are disjoint strata). Not
    computable when a municipality cell with w_l > 0 is suppressed. Joint standardisation over
    all four dimensions would need cross-classified cells, which the publication does not hold
    (suppression works on one dimension at a time).
    """
    raw = Point.of(ix.total(question, kommune), "mean")
    national = Point.of(ix.total(question, NATIONAL), "mean")
    out = []
    for dim in DIMENSIONS:
        national_n = {lvl: (ix.cell(question, dim, NATIONAL, lvl) or {}).get("n_valid") for lvl in ix.levels[dim]}
        if any(n is None for n in national_n.values()) or not national_n:
            out.append(Adjusted(dim, None, None, {}, "national"))
            continue
        total = sum(national_n.values())
        weights = {lvl: n / total for lvl, n in national_n.items() if n}
        cells = {lvl: ix.cell(question, dim, kommune, lvl) for lvl in weights}
        if any(c is None or c["suppressed"] for c in cells.values()):
            out.append(Adjusted(dim, None, None, weights, "suppressed"))
            continue
        value = math.fsum(w * cells[lvl]["mean"] for lvl, w in weights.items())
        se = math.sqrt(math.fsum((w * cells[lvl]["mean_se"]) ** 2 for lvl, w in weights.items()))
        out.append(Adjusted(dim, value, se, weights))
    return raw, national, out


def fair_chart(ix: Index, kommune: str, question: str, lang: str) -> ChartSpec:
    t = tx.texts(lang)
    raw, national, adjusted = fair_comparison(ix, kommune, question)
    categories = [t["raw"]] + [t["adjusted_for"].format(dim=t[a.dimension].lower()) for a in adjusted] + [t["national"]]
    points = [raw]
    for a in adjusted:
        if a.value is None:
            points.append(Point(None, suppressed=True))
        else:
            points.append(Point(a.value, a.value - 1.959963984540054 * a.se, a.value + 1.959963984540054 * a.se))
    points.append(national)
    return ChartSpec(f"fair-{question}", f"{t['fair']}: {question} – {kommune_name(kommune, lang)}", categories,
                     [Series(kommune_name(kommune, lang), points)], kind="barh", unit="mean")


CHART_PATTERN = re.compile(r"^(themes|questions|dist-(?P<dq>q\d+)|bd-(?P<dim>maalgruppe|gender|age_band|duration_band)-(?P<bq>q\d+)|trend-(?P<tq>q\d+)|fair-(?P<fq>q\d+))$")
