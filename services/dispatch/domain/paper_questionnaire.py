"""The paper questionnaire (pure): the citizen's questionnaire as a printable PDF, for SF1601's
Fysisk Post.

What it prints comes from responses (``questionnaire.offered``: the questionnaire flattened for
print in each of its languages, ``shared.events.PrintedQuestionnaire``); the cover texts are
``templates/paper_questionnaire.json``, one entry per language. The citizen's language is used
when the questionnaire has it, the cover texts have it and the embedded font can draw every
character of it; otherwise Danish, the questionnaire's source language (``choose_language``):
a page of missing glyphs helps nobody.

Every page carries the answer id (``shared.answer_id``) in its footer, so a page that comes
loose still names its form; the cover has it large, with the citizen's link as text and as a QR
code. Answer boxes are drawn squares (the embedded font has no ballot box), one per option,
labelled with the option's text; free-text questions get a ruled box.
"""

from __future__ import annotations

import functools
import io
import json
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.platypus import CondPageBreak, Flowable, KeepTogether, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from shared.events import PrintedQuestionnaire

from . import letters as _letters
from .letters import da_date

TEXTS_FILE = Path(__file__).with_name("templates") / "paper_questionnaire.json"
SOURCE_LANGUAGE = "da"
FILENAME = "Spørgeskema på papir.pdf"


@functools.cache
def cover_texts() -> dict[str, dict[str, str]]:
    return json.loads(TEXTS_FILE.read_text(encoding="utf-8"))


@dataclass(frozen=True, slots=True)
class PaperContext:
    """One citizen's paper questionnaire. Name and link are kept out of repr."""

    name: str | None = field(repr=False)
    link: str = field(repr=False)
    answer_id: str
    municipality: str
    deadline: date
    letter_date: date


@dataclass(frozen=True, slots=True)
class RenderedPaper:
    language: str
    title: str
    pdf: bytes = field(repr=False)
    filename: str = FILENAME


def _font_draws(text: str) -> bool:
    _letters._styles()  # registers the fonts
    face = _letters.pdfmetrics.getFont(_letters._FONT).face
    return all(ord(ch) in face.charToGlyph or ch in "\n\r\t" for ch in text)


def _all_text(questionnaire: PrintedQuestionnaire, texts: dict[str, str]) -> str:
    return questionnaire.model_dump_json() + json.dumps(texts, ensure_ascii=False)


def choose_language(wanted: str | None, offered: dict[str, PrintedQuestionnaire]) -> str:
    """The language to print in: ``wanted`` if the questionnaire and the cover texts have it and
    the font can draw it, else Danish."""
    if wanted and wanted in offered and wanted in cover_texts():
        if _font_draws(_all_text(offered[wanted], cover_texts()[wanted])):
            return wanted
    return SOURCE_LANGUAGE


class _Box(Flowable):
    """An empty square to put a cross in."""

    def __init__(self, size: float = 4.2 * mm) -> None:
        super().__init__()
        self.size = size

    def wrap(self, available_width, available_height):
        return self.size, self.size

    def draw(self):
        self.canv.setLineWidth(0.8)
        self.canv.rect(0, 0, self.size, self.size)


@functools.cache
def _styles() -> dict[str, ParagraphStyle]:
    base = _letters._styles()
    body = base["body"]
    return {
        **base,
        "question": ParagraphStyle("question", parent=body, fontName=_letters._FONT + "-Bold", spaceBefore=6, spaceAfter=3),
        "option": ParagraphStyle("option", parent=body, spaceAfter=0, leading=13),
        "answer_id": ParagraphStyle("answer_id", parent=body, fontName=_letters._FONT + "-Bold", fontSize=20, leading=26),
        "small": ParagraphStyle("small", parent=body, fontSize=9, leading=12, textColor=colors.HexColor("#444444")),
    }


def _date(language: str, value: date) -> str:
    return da_date(value) if language == "da" else value.isoformat()


def story(questionnaire: PrintedQuestionnaire, ctx: PaperContext, texts: dict[str, str]) -> list:
    """The PDF's flowables (the QR code among them), for rendering and for tests."""
    s = _styles()
    lang = questionnaire.language
    greeting = texts["greeting"].format(name=ctx.name) if ctx.name else texts["greeting_no_name"]
    out: list = [
        Paragraph(escape(ctx.municipality), s["sender"]),
        Paragraph(escape(_date(lang, ctx.letter_date)), s["date"]),
        Spacer(0, 8 * mm),
        Paragraph(escape(questionnaire.title), s["title"]),
        Paragraph(f'{escape(texts["answer_id"])}: {escape(ctx.answer_id)}', s["answer_id"]),
        Paragraph(escape(texts["answer_id_note"]), s["small"]),
        Spacer(0, 4 * mm),
        Paragraph(escape(greeting), s["body"]),
        Paragraph(escape(texts["intro"]), s["body"]),
        Paragraph(escape(texts["how_paper"].format(municipality=ctx.municipality, deadline=_date(lang, ctx.deadline))), s["body"]),
        Paragraph(escape(texts["how_web"]), s["body"]),
        _letters._qr_code(ctx.link),
        Paragraph(f'<a href="{escape(ctx.link)}" color="#0b4f8a">{escape(ctx.link)}</a>', s["body"]),
        Paragraph(escape(texts["voluntary"]), s["small"]),
    ]
    number = 0
    for theme in questionnaire.themes:
        out += [CondPageBreak(40 * mm), Paragraph(escape(theme.title), s["heading"])]
        for question in theme.questions:
            number += 1
            # The question's id, small, for the operator who keys the form in (the entry takes ids).
            block: list = [Paragraph(f'{number}. {escape(question.text)} <font size="7" color="#888888">'
                                     f'[{escape(question.id)}]</font>', s["question"])]
            if question.help:
                block.append(Paragraph(escape(question.help), s["small"]))
            if question.options:
                rows = [[_Box(), Paragraph(escape(option.label), s["option"])] for option in question.options]
                table = Table(rows, colWidths=[8 * mm, None], hAlign="LEFT")
                table.setStyle(TableStyle([("VALIGN", (0, 0), (-1, -1), "MIDDLE"), ("LEFTPADDING", (0, 0), (-1, -1), 2),
                                           ("TOPPADDING", (0, 0), (-1, -1), 1.5), ("BOTTOMPADDING", (0, 0), (-1, -1), 1.5)]))
                block.append(table)
            else:
                block.append(Paragraph(escape(texts["write_here"]), s["small"]))
                lines = Table([[""]] * 5, colWidths=[150 * mm], rowHeights=[8 * mm] * 5, hAlign="LEFT")
                lines.setStyle(TableStyle([("LINEBELOW", (0, 0), (-1, -1), 0.5, colors.HexColor("#888888")),
                                           ("BOX", (0, 0), (-1, -1), 0.8, colors.black)]))
                block.append(lines)
            out.append(KeepTogether(block))
    out += [Spacer(0, 6 * mm), Paragraph(escape(texts["thanks"]), s["body"])]
    return out


def render_paper_questionnaire(offered: dict[str, PrintedQuestionnaire], ctx: PaperContext,
                               language: str | None = None) -> RenderedPaper:
    """The citizen's paper questionnaire as a PDF, in ``language`` where it can be (see
    ``choose_language``)."""
    chosen = choose_language(language, offered)
    questionnaire = offered[chosen]
    texts = cover_texts()[chosen]
    footer = f'{texts["answer_id"]} {ctx.answer_id}'

    def on_page(canvas, doc) -> None:
        canvas.saveState()
        canvas.setFont(_letters._FONT, 9)
        canvas.drawString(25 * mm, 12 * mm, footer)
        canvas.drawRightString(A4[0] - 25 * mm, 12 * mm, texts["page"].format(page=doc.page))
        canvas.restoreState()

    with _letters._REPORTLAB:
        flowables = story(questionnaire, ctx, texts)
        buffer = io.BytesIO()
        doc = SimpleDocTemplate(buffer, pagesize=A4, leftMargin=25 * mm, rightMargin=25 * mm, topMargin=20 * mm,
                                bottomMargin=22 * mm, title=questionnaire.title, author=ctx.municipality,
                                creator="Borgerblik", lang=chosen, pageCompression=1)
        doc.build(flowables, onFirstPage=on_page, onLaterPages=on_page)
    return RenderedPaper(language=chosen, title=questionnaire.title, pdf=buffer.getvalue())
