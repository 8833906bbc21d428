"""Server-side charts (matplotlib's object API, no pyplot state: safe off the event loop)."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
from matplotlib.backends.backend_pdf import PdfPages  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from services.analytics.dashboard import texts as tx  # noqa: E402
from services.analytics.dashboard.data import ChartSpec  # noqa: E402

# Dark blue and dark orange: both >= 3:1 against white (WCAG 1.4.11) and distinguishable in greyscale.
COLOURS = ("#1f4e79", "#b34700", "#4d4d4d")
matplotlib.rcParams["svg.fonttype"] = "none"
matplotlib.rcParams["svg.hashsalt"] = "borgerblik"  # stable ids: the same chart gives the same bytes


def figure(spec: ChartSpec, lang: str) -> Figure:
    t = tx.texts(lang)
    n_cat = len(spec.categories)
    horizontal = spec.kind == "barh"
    height = max(3.2, 0.45 * n_cat * max(1, len(spec.series)) + 1.2) if horizontal else 4.2
    fig = Figure(figsize=(8.5, height), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    fmt = (lambda v: tx.fmt_percent(v, lang)) if spec.unit == "share" else (lambda v: tx.fmt_number(v, lang))
    if spec.kind == "line":
        xs = list(range(n_cat))
        for i, s in enumerate(spec.series):
            ax.plot(xs, [float("nan") if v is None else v for v in s.values], marker="o", color=COLOURS[i % 3], label=s.name,
                    linestyle="-" if i == 0 else "--")
            for x, p in zip(xs, s.points):
                if p.value is not None:
                    # the first series labelled below its points, the others above: no overlap where they meet
                    ax.annotate(fmt(p.value) + (" *" if p.caution else ""), (x, p.value), textcoords="offset points",
                                xytext=(0, -14 if i == 0 else 7), ha="center", fontsize=8)
                elif p.suppressed:
                    ax.annotate(t["suppressed"], (x, 1.1), ha="center", fontsize=8, color=COLOURS[2])
        ax.set_xticks(xs, spec.categories)
        ax.margins(x=0.15)
    else:
        width = 0.8 / max(1, len(spec.series))
        for i, s in enumerate(spec.series):
            pos = [c + (i - (len(spec.series) - 1) / 2) * width for c in range(n_cat)]
            vals = [0 if v is None else v for v in s.values]
            bar = ax.barh if horizontal else ax.bar
            bars = bar(pos, vals, width * 0.95, color=COLOURS[i % 3], label=s.name)
            for b, p, x in zip(bars, s.points, pos):
                if p.value is None:
                    label = t["suppressed"] if p.suppressed else "–"
                    base = 0 if spec.unit == "share" else 1
                    if horizontal:
                        ax.text(base + 0.01, x, label, va="center", fontsize=8, color=COLOURS[2])
                    else:
                        ax.text(x, base + 0.05, label, ha="center", rotation=90, fontsize=8, color=COLOURS[2], va="bottom")
                else:
                    label = fmt(p.value) + (" *" if p.caution else "")
                    if horizontal:
                        ax.text(p.value, x, " " + label, va="center", fontsize=8)
                    else:
                        ax.text(x, p.value, label, ha="center", va="bottom", fontsize=8)
        if horizontal:
            ax.set_yticks(range(n_cat), spec.categories)
            ax.invert_yaxis()
        else:
            ax.set_xticks(range(n_cat), spec.categories, rotation=0 if n_cat <= 8 else 45)
    value_axis = ax.set_xlim if horizontal else ax.set_ylim
    if spec.unit == "share":
        value_axis(0, 1.1)
    else:
        value_axis(1, 5.4)
    if spec.target is not None:
        line = ax.axvline if horizontal else ax.axhline
        line(spec.target, color="black", linestyle=":", linewidth=1.5, label=spec.target_label)
    ax.set_title(spec.title, fontsize=11, loc="left")
    ax.spines[["top", "right"]].set_visible(False)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    notes = []
    if spec.any_suppressed():
        notes.append(f"{t['suppressed']}: < {spec.min_count}")
    if spec.any_caution():
        notes.append(f"* {t['caution']}")
    if notes:
        ax.set_xlabel("   ".join(notes), fontsize=7, color=COLOURS[2], loc="left")
    return fig


def render(spec: ChartSpec, lang: str, fmt: str) -> bytes:
    fig = figure(spec, lang)
    buffer = io.BytesIO()
    fig.savefig(buffer, format=fmt, dpi=150 if fmt == "png" else 100, metadata={"Date": None} if fmt == "svg" else None)
    return buffer.getvalue()


def pdf_report(title: str, sections: list[ChartSpec], lang: str) -> bytes:
    """Every chart of the round on its own page, the figures as a table under it."""
    buffer = io.BytesIO()
    with PdfPages(buffer, metadata={"Title": title, "Creator": "Borgerblik"}) as pdf:
        cover = Figure(figsize=(8.27, 11.69))
        cover.text(0.1, 0.8, title, fontsize=18, wrap=True)
        cover.text(0.1, 0.75, tx.texts(lang)["weighted_note"], fontsize=9, wrap=True)
        pdf.savefig(cover)
        for spec in sections:
            fig = figure(spec, lang)
            fig.set_size_inches(8.27, max(fig.get_size_inches()[1], 4.2))
            pdf.savefig(fig)
            pdf.savefig(_table_figure(spec, lang))
    return buffer.getvalue()


def _table_figure(spec: ChartSpec, lang: str) -> Figure:
    from services.analytics.dashboard.present import table_rows

    header, rows = table_rows(spec, lang)
    fig = Figure(figsize=(8.27, 0.35 * (len(rows) + 3)))
    ax = fig.add_subplot()
    ax.axis("off")
    ax.set_title(spec.title, fontsize=10, loc="left")
    table = ax.table(cellText=[[c for c in r] for r in rows], colLabels=header, loc="upper left", cellLoc="left")
    table.auto_set_font_size(False)
    table.set_fontsize(7)
    return fig
