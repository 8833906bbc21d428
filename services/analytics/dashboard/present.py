"""A chart's accessible twin: the same numbers as a table (page, PDF and slide notes)."""

from __future__ import annotations

from services.analytics.dashboard import texts as tx
from services.analytics.dashboard.data import ChartSpec, Point


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
