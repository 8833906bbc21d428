"""What the dashboard shows, read from the same cached publication the API serves.

Nothing here estimates anything from answers: every figure is a published (already suppressed)
cell of ``RoundPublication.indicator_rows`` / ``rate_rows`` or a trend row of
``service.trends``. The two derived figures are documented where they are made: a theme score
(plain average of its questions' published means) and the directly standardised score of the
fair comparison and the comparison group (:mod:`.comparison`).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from services.analytics.domain.publication import DIMENSIONS, NATIONAL, RoundPublication
from services.analytics.dashboard import comparison
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
    # The publication's suppression threshold and caution limit, for the footnotes (set from the
    # release being drawn: services/analytics/config.py is their one home).
    min_count: int | None = None
    caution_below: int | None = None

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

    def respondents(self) -> dict[str, dict[str, dict[str, int | None]]]:
        """kommune -> breakdown -> level -> published respondents (None: suppressed), from the
        first question's rows (respondents are the same in every question's tables)."""
        out: dict[str, dict[str, dict[str, int | None]]] = {}
        if not self.questions:
            return out
        for r in self.publication.indicators(self.questions[0]):
            if r["kommunekode"] != NATIONAL and r["level"] != "total" and r["dimension"] in ("gender", "age_band", "duration_band"):
                out.setdefault(r["kommunekode"], {}).setdefault(r["dimension"], {})[r["level"]] = r["n_respondents"]
        return out

    def published_respondents(self, kommune: str) -> dict[tuple[str, str], int | None]:
        """(dimension, level) -> the respondents this release published for ``kommune``'s (or
        the country's) cell (None: suppressed): the target groups from the response-rate table,
        gender, age band and duration band from the first question's rows (a release that
        publishes rates only has none of those)."""
        out: dict[tuple[str, str], int | None] = {
            (dim, level): row["answers"] for (dim, k, level), row in self.rates.items()
            if dim == "maalgruppe" and k == kommune and level != "total"
        }
        if self.questions:
            for r in self.publication.indicators(self.questions[0], kommunekode=kommune):
                if r["level"] != "total" and r["dimension"] in ("gender", "age_band", "duration_band"):
                    out[(r["dimension"], r["level"])] = r["n_respondents"]
        return out

    def compositions(self, rd) -> dict:
        found = self.__dict__.get("_compositions")
        if found is None:
            found = self.__dict__["_compositions"] = comparison.composition(rd, self.respondents())
        return found


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
    return tx.texts(lang)["national"] if kommune == NATIONAL else tx.municipality_name(kommune, lang)


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
    return ChartSpec("questions", f"{t['mean']}: {t['questions'].lower()}", [tx.question_label(q, lang) for q in ix.questions], series,
                     kind="barh", unit="mean")


def distribution_chart(ix: Index, kommune: str, question: str, lang: str) -> ChartSpec:
    t = tx.texts(lang)
    categories = [tx.code_label(question, c, lang) for c in SHARE_CODES]
    series = [
        Series(kommune_name(k, lang), [Point.of(ix.total(question, k), "dont_know_share" if c == "dk" else f"share_{c}") for c in SHARE_CODES])
        for k in _series_for(kommune, lang)
    ]
    return ChartSpec(f"dist-{question}", f"{t['distribution']}: {tx.question_label(question, lang)}", categories, series, kind="barh", unit="share")


def breakdown_chart(ix: Index, kommune: str, question: str, dim: str, lang: str, targets: dict) -> ChartSpec:
    t = tx.texts(lang)
    levels = ["total", *ix.levels[dim]]
    series = [Series(kommune_name(k, lang), [Point.of(ix.cell(question, dim, k, lvl), "mean") for lvl in levels]) for k in _series_for(kommune, lang)]
    target = target_for(targets, question, "mean")
    return ChartSpec(f"bd-{dim}-{question}", f"{tx.question_label(question, lang)} – {t['mean'].lower()} – {t[dim].lower()}",
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
    return ChartSpec(f"trend-{question}", f"{t['trends']}: {tx.question_label(question, lang)} – {t['mean'].lower()}", list(rounds), series, kind="line",
                     unit="mean", target=target,
                     target_label=None if target is None else t["target_line"].format(value=tx.fmt_number(target, lang, 1)))


# -- comparable municipalities and the fair comparison ----------------------------------------------


Z95 = 1.959963984540054


def group_point(ix: Index, rd: comparison.RoundData, question: str, members: list[str]) -> Point:
    """The comparison group's mean, with the publication's suppression (see comparison.group_cell)."""
    if not members:
        return Point(None, missing=True)
    member_suppressed = any((row := ix.total(question, k)) is not None and row["suppressed"] for k in members)
    # The members' suppressed strata are weighted as one class, as in a published total.
    hidden = {(k, lvl) for k in members for lvl in ix.levels["maalgruppe"]
              if (row := ix.cell(question, "maalgruppe", k, lvl)) is not None and row["suppressed"]}
    g = comparison.group_cell(rd, question, members, member_suppressed, ix.publication.min_count, ix.publication.caution_below, hidden)
    if g.suppressed:
        return Point(None, suppressed=True)
    return Point(g.mean, g.mean - Z95 * g.se, g.mean + Z95 * g.se, g.n_valid, False, g.caution)


def adjusted_point(ix: Index, rd: comparison.RoundData, kommune: str, question: str) -> tuple[Point, float | None]:
    """(adjusted score, expected score from composition): M + O_k - E_k from the published raw
    score O_k and national figure M, and E_k at the municipality's composition, its population's mix (see
    comparison); suppressed with the municipality's total cell, missing without a composition."""
    raw, national = ix.total(question, kommune), ix.total(question, NATIONAL)
    if raw is None or national is None:
        return Point(None, missing=True), None
    if raw["suppressed"] or raw["mean"] is None:
        return Point(None, suppressed=True), None
    adj = comparison.adjustment(rd, question)
    mix = ix.compositions(rd).get(kommune)
    if adj is None or mix is None or national["mean"] is None:
        return Point(None, missing=True), None
    expected = adj.expected(mix)
    value, se = national["mean"] + raw["mean"] - expected, raw["mean_se"]
    return Point(value, value - Z95 * se, value + Z95 * se, raw["n_valid"], False, bool(raw["caution"])), expected


def group_name(comp: comparison.Comparable, lang: str) -> str:
    t = tx.texts(lang)
    if comp.group_name:
        return f"{t['comparable']}: {comp.group_name.get(lang) or comp.group_name.get('da')}"
    return t["comparable"]


def compare_chart(ix: Index, rd: comparison.RoundData, kommune: str, comp: comparison.Comparable, lang: str) -> ChartSpec:
    t = tx.texts(lang)
    members = comp.kommuner if comp.enough else []
    series = [
        Series(kommune_name(kommune, lang), [Point.of(ix.total(q, kommune), "mean") for q in ix.questions]),
        Series(group_name(comp, lang), [group_point(ix, rd, q, members) for q in ix.questions]),
        Series(kommune_name(NATIONAL, lang), [Point.of(ix.total(q, NATIONAL), "mean") for q in ix.questions]),
    ]
    return ChartSpec("compare", f"{t['mean']}: {kommune_name(kommune, lang)}, {t['comparable'].lower()}, {t['national'].lower()}",
                     [tx.question_label(q, lang) for q in ix.questions], series, kind="barh", unit="mean",
                     notes=[t["comparable_members"].format(members=", ".join(kommune_name(k, lang) for k in members) or "–")])


def fair_chart(ix: Index, rd: comparison.RoundData, kommune: str, comp: comparison.Comparable, question: str, lang: str) -> ChartSpec:
    t = tx.texts(lang)
    raw = Point.of(ix.total(question, kommune), "mean")
    adjusted, _ = adjusted_point(ix, rd, kommune, question)
    group = group_point(ix, rd, question, comp.kommuner if comp.enough else [])
    national = Point.of(ix.total(question, NATIONAL), "mean")
    categories = [t["raw"], t["adjusted"], group_name(comp, lang), t["national"]]
    return ChartSpec(f"fair-{question}", f"{t['fair']}: {tx.question_label(question, lang)} – {kommune_name(kommune, lang)}", categories,
                     [Series(kommune_name(kommune, lang), [raw, adjusted, group, national])], kind="barh", unit="mean",
                     notes=[t["adjusted_note"]])


CHART_PATTERN = re.compile(r"^(themes|questions|compare|dist-(?P<dq>q\d+)|bd-(?P<dim>maalgruppe|gender|age_band|duration_band)-(?P<bq>q\d+)|trend-(?P<tq>q\d+)|fair-(?P<fq>q\d+))$")
