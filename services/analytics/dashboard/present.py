"""A chart's accessible twin: the same numbers as a table (page, PDF and slide notes); the
representativeness figures in words and as tables."""

from __future__ import annotations

from services.analytics.dashboard import texts as tx
from services.analytics.dashboard.data import ChartSpec, Point
from services.analytics.dashboard.representativeness import KOMMUNE, VARIABLES, Figures
from services.analytics.domain.publication import natural_key


def point_text(p: Point, unit: str, lang: str) -> str:
    t = tx.texts(lang)
    if p.suppressed:
        return f"— ({t['suppressed']})"
    if p.value is None:
        return "–"
    text = tx.fmt_percent(p.value, lang) if unit == "share" else tx.fmt_number(p.value, lang)
    if p.ci_low is not None and p.ci_high is not None:
        if unit == "share":
            text += f" ({tx.fmt_percent(p.ci_low, lang)}–{tx.fmt_percent(p.ci_high, lang)})"
        else:
            text += f" ({tx.fmt_number(p.ci_low, lang)}–{tx.fmt_number(p.ci_high, lang)})"
    if p.caution:
        text += " *"
    return text


def table_rows(spec: ChartSpec, lang: str) -> tuple[list[str], list[list[str]]]:
    header = [""] + [s.name for s in spec.series]
    rows = [[cat] + [point_text(s.points[i], spec.unit, lang) for s in spec.series] for i, cat in enumerate(spec.categories)]
    return header, rows


def alt_text(spec: ChartSpec, lang: str) -> str:
    """Short alternative for the image; the full figures are in the table right under it."""
    t = tx.texts(lang)
    parts = []
    for s in spec.series:
        values = ", ".join(f"{c}: {point_text(p, spec.unit, lang)}" for c, p in zip(spec.categories, s.points))
        parts.append(f"{s.name}: {values}")
    text = f"{spec.title}. " + "; ".join(parts)
    if spec.target_label:
        text += f". {spec.target_label}"
    return text if len(text) < 600 else f"{spec.title}. {t['data_table']}."


def reading(f: Figures, lang: str) -> str:
    """The plain-language reading of one municipality's (or the country's) representativeness."""
    t = tx.texts(lang)
    if f.quality is None:
        return t["rep_unknown"]
    text = f"{t[f'rep_{f.quality}']} ({t['rep_r']} {tx.fmt_number(f.r_indicator, lang)}.)"
    if f.gap is None:
        return text
    variable = t[f"rep_var_{f.gap.variable}"]
    if f.gap.low is not None:
        gap = t["rep_gap"].format(variable=variable, low=tx.group_label(f.gap.variable, f.gap.low, lang),
                                  high=tx.group_label(f.gap.variable, f.gap.high, lang))
    elif f.gap.variable == KOMMUNE:
        gap = t["rep_gap_kommuner"]
    else:
        gap = t["rep_gap_hidden"].format(variable=variable)
    return f"{text} {gap[:1].upper()}{gap[1:]}"


def representativeness_tables(figures: list[Figures], lang: str) -> dict:
    """The indicators and the rates by background as table rows, one column per municipality
    (own, then the country); a hidden figure is "— (undertrykt)", a figure not measured "–"."""
    t = tx.texts(lang)
    hidden = f"— ({t['suppressed']})"

    def number(value: float | None, measured: bool) -> str:
        return tx.fmt_number(value, lang) if value is not None else (hidden if measured else "–")

    indicators = [[t["rep_r"]] + [number(f.r_indicator, False) for f in figures],
                  [t["rep_cv"]] + [number(f.cv, False) for f in figures]]
    variables = [v for v in (*VARIABLES, KOMMUNE) if any(v in f.partial for f in figures)]
    for v in variables:
        indicators.append([t["rep_partial"].format(variable=t[f"rep_var_{v}"])]
                          + [number(f.partial.get(v), v in f.partial) if f.quality else "–" for f in figures])
    rates = [[t["total"]] + [tx.fmt_percent(f.rate, lang) if f.rate is not None else hidden for f in figures]]
    for v in VARIABLES:
        by_level = [dict(f.rates.get(v, [])) for f in figures]
        levels = sorted({lvl for rs in by_level for lvl in rs}, key=natural_key)
        for lvl in levels:
            rates.append([f"{t[v]}: {tx.level_label(lvl, lang)}"]
                         + [("–" if lvl not in rs else hidden if rs[lvl] is None else tx.fmt_percent(rs[lvl], lang)) for rs in by_level])
    return {"indicators": indicators, "rates": rates}
