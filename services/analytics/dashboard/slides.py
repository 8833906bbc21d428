"""PowerPoint with native (editable) charts: the chart data are the published numbers."""

from __future__ import annotations

import io

from pptx import Presentation
from pptx.chart.data import CategoryChartData
from pptx.dml.color import RGBColor
from pptx.enum.chart import XL_CHART_TYPE, XL_LEGEND_POSITION
from pptx.util import Inches, Pt

from services.analytics.dashboard import texts as tx
from services.analytics.dashboard.data import ChartSpec
from services.analytics.dashboard.present import table_rows

COLOURS = (RGBColor(0x1F, 0x4E, 0x79), RGBColor(0xB3, 0x47, 0x00), RGBColor(0x1A, 0x1A, 0x1A))
CHART_TYPES = {"bar": XL_CHART_TYPE.COLUMN_CLUSTERED, "barh": XL_CHART_TYPE.BAR_CLUSTERED, "line": XL_CHART_TYPE.LINE_MARKERS}


def new_deck() -> Presentation:
    deck = Presentation()
    deck.slide_width, deck.slide_height = Inches(13.333), Inches(7.5)  # 16:9
    return deck


def title_slide(deck: Presentation, title: str, subtitle: str) -> None:
    slide = deck.slides.add_slide(deck.slide_layouts[0])
    slide.shapes.title.text = title
    slide.placeholders[1].text = subtitle


def add_chart_slide(deck: Presentation, spec: ChartSpec, lang: str) -> None:
    t = tx.texts(lang)
    slide = deck.slides.add_slide(deck.slide_layouts[5])  # title only
    slide.shapes.title.text = spec.title
    slide.shapes.title.text_frame.paragraphs[0].font.size = Pt(26)

    data = CategoryChartData(number_format="0%" if spec.unit == "share" else "0.00")
    data.categories = spec.categories
    for s in spec.series:
        data.add_series(s.name, s.values)  # None stays empty: a suppressed cell is never 0
    if spec.target is not None and spec.kind == "line":
        data.add_series(spec.target_label or t["target"], [spec.target] * len(spec.categories))
    left, top = Inches(0.5), Inches(1.4)
    width, height = Inches(8.6), Inches(5.6)
    chart = slide.shapes.add_chart(CHART_TYPES[spec.kind], left, top, width, height, data).chart
    chart.has_legend = True
    chart.legend.position = XL_LEGEND_POSITION.BOTTOM
    chart.legend.include_in_layout = False
    plot = chart.plots[0]
    plot.has_data_labels = True
    plot.data_labels.number_format = "0%" if spec.unit == "share" else "0.00"
    plot.data_labels.number_format_is_linked = False
    plot.data_labels.font.size = Pt(10)
    for i, series in enumerate(plot.series):
        colour = COLOURS[min(i, 2)]
        if spec.kind == "line":
            series.format.line.color.rgb = colour
            series.smooth = False
        else:
            series.format.fill.solid()
            series.format.fill.fore_color.rgb = colour
    axis = chart.value_axis
    axis.minimum_scale, axis.maximum_scale = (0.0, 1.0) if spec.unit == "share" else (1.0, 5.0)
    axis.has_major_gridlines = True
    if spec.kind == "barh":
        chart.category_axis.reverse_order = True

    # The figures as text beside the chart: suppressed and caution visible, target stated.
    box = slide.shapes.add_textbox(Inches(9.3), Inches(1.4), Inches(3.6), Inches(5.6))
    frame = box.text_frame
    frame.word_wrap = True
    header, rows = table_rows(spec, lang)
    first = frame.paragraphs[0]
    first.text = t["data_table"]
    first.font.bold = True
    first.font.size = Pt(12)
    legend = frame.add_paragraph()
    legend.text = " | ".join(header[1:])
    legend.font.size = Pt(9)
    legend.font.bold = True
    for row in rows:
        p = frame.add_paragraph()
        p.text = f"{row[0]}: " + " | ".join(row[1:])
        p.font.size = Pt(9)
    notes = [spec.target_label] if spec.target_label else []
    if spec.any_suppressed():
        notes.append(t["suppressed_note"].format(min=spec.min_count))
    if spec.any_caution():
        notes.append(t["caution_note"].format(n=spec.caution_below))
    notes += spec.notes
    for note in notes:
        p = frame.add_paragraph()
        p.text = note
        p.font.size = Pt(8)
        p.font.italic = True
    slide.notes_slide.notes_text_frame.text = "\n".join([" | ".join(header)] + [" | ".join(r) for r in rows])


def to_bytes(deck: Presentation) -> bytes:
    buffer = io.BytesIO()
    deck.save(buffer)
    return buffer.getvalue()


def single_slide(spec: ChartSpec, lang: str) -> bytes:
    deck = new_deck()
    add_chart_slide(deck, spec, lang)
    return to_bytes(deck)

