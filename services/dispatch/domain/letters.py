"""Danish survey letters (PDF for Digital Post) and SMS texts.

Wording lives in Jinja2 templates under `templates/` so it can be changed
without touching code: `letter_<kind>.j2` has the blocks `title`, `notification`
and `body`; `sms_<kind>.j2` has `long` and `short`. Letter bodies are a tiny
format: paragraphs split by blank lines, a paragraph starting with "## " is a
subheading, and ReportLab's paragraph markup (<b>, <br/>, <a>) is allowed; a
paragraph "[[languages]]" becomes one line in each language the round offers,
saying (in that language) that it is chosen on the questionnaire's first page.
Letter templates are auto-escaped, so a merge value such as a name with "&"
or "<" cannot break the markup.

PDFs are drawn with ReportLab rather than fpdf2:
* it ships TrueType fonts (Bitstream Vera, the font DejaVu grew out of) inside
  the pip package, so æ/ø/å render and embed on a fresh machine with no system
  fonts; fpdf2 ships none, and its built-in core fonts are not embedded;
* its own TrueType subsetter is fast (no fontTools round trip per document),
  which matters at 200,000 letters per round;
* it is mature (since 2000) and its PDFs carry ToUnicode maps, so screen
  readers and text extraction get the Danish letters right.
"""

from __future__ import annotations

import functools
import html
import io
import re
import threading
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from pathlib import Path
from xml.sax.saxutils import escape as xml_escape

import jinja2
import reportlab
from reportlab.graphics.barcode.qr import QrCodeWidget
from reportlab.graphics.shapes import Drawing
from reportlab.lib import colors
from reportlab.lib.enums import TA_RIGHT
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from .gsm import SmsLength, sms_length

TEMPLATE_DIR = Path(__file__).with_name("templates")
_FONT_DIR = Path(reportlab.__file__).with_name("fonts")
_FONT = "BorgerblikVera"

#: One line per language the questionnaire is offered in, in that language: how to choose it.
#: The codes are the survey's (BCP 47; ``da-x-let`` is easy-read Danish, let dansk).
LANGUAGE_CHOICE: dict[str, str] = {
    "da": "Vælg sprog på skemaets første side.",
    "da-x-let": "Vælg let dansk på første side.",
    "en": "Choose English on the first page.",
    "ar": "اختر العربية في الصفحة الأولى.",
    "uk": "Виберіть українську на першій сторінці.",
    "tr": "Türkçeyi ilk sayfada seçebilirsiniz.",
    "so": "Af-Soomaali ka dooro bogga koowaad.",
    "pl": "Polski wybierzesz na pierwszej stronie.",
}
_RIGHT_TO_LEFT = frozenset({"ar"})
# Vera has no Cyrillic or Arabic and not every Polish letter: a line Vera cannot draw is drawn
# in DejaVu Sans (Vera's extension, found in ReportLab's font search path); a line no font
# here can draw is left out rather than printed as empty boxes.
_WIDE_FONT = "BorgerblikDejaVu"
_WIDE_FONT_FILE = "DejaVuSans.ttf"

_DA_MONTHS = (
    "januar", "februar", "marts", "april", "maj", "juni",
    "juli", "august", "september", "oktober", "november", "december",
)


class LetterKind(StrEnum):
    INVITATION = "invitation"
    REMINDER_1 = "reminder_1"
    REMINDER_2 = "reminder_2"


@dataclass(frozen=True, slots=True)
class ContactInfo:
    """Who the citizen can call or write to (usually the job centre)."""

    name: str
    phone: str | None = None
    email: str | None = None


@dataclass(frozen=True, slots=True)
class LetterContext:
    """Merge fields for one recipient.

    `name` and `link` are kept out of repr: the name is personal data and the
    link opens the recipient's own questionnaire."""

    name: str | None = field(repr=False)
    link: str = field(repr=False)
    municipality: str
    deadline: date
    contact: ContactInfo
    letter_date: date | None = None
    """Date printed on the letter; today when not given."""
    privacy_url: str | None = None
    """Where the privacy notice is (GDPR art. 14 information); linked when set."""
    languages: tuple[str, ...] = tuple(LANGUAGE_CHOICE)
    """The languages the round offers (Danish first): the letter says in each how to choose it."""


@dataclass(frozen=True, slots=True)
class RenderedLetter:
    kind: LetterKind
    title: str
    notification: str
    pdf: bytes = field(repr=False)
    filename: str


@dataclass(frozen=True, slots=True)
class SmsText:
    text: str = field(repr=False)
    length: SmsLength


def da_date(value: date) -> str:
    """'15. september 2025' (no locale: the container's locale is unknown)."""
    return f"{value.day}. {_DA_MONTHS[value.month - 1]} {value.year}"


def da_short_date(value: date) -> str:
    """'15/9', the usual short Danish form; saves characters in an SMS."""
    return f"{value.day}/{value.month}"


@functools.cache
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATE_DIR),
        # Letters are ReportLab markup and need escaping; SMS texts are plain.
        autoescape=lambda name: bool(name) and name.startswith("letter"),
        undefined=jinja2.StrictUndefined,  # a misspelt merge field must fail, not vanish
        keep_trailing_newline=False,
    )
    env.filters["da_date"] = da_date
    env.filters["da_short_date"] = da_short_date
    return env


def _render_blocks(template_name: str, ctx: LetterContext, *blocks: str,
                   paper: bool = False) -> dict[str, str]:
    template = _environment().get_template(template_name)
    variables = {
        "name": ctx.name,
        "link": ctx.link,
        "municipality": ctx.municipality,
        "deadline": ctx.deadline,
        "contact": ctx.contact,
        "paper": paper,
        "privacy_url": ctx.privacy_url,
        "languages": language_lines(ctx.languages),
    }
    context = template.new_context(variables)
    return {b: "".join(template.blocks[b](context)).strip() for b in blocks}


def render_letter(kind: LetterKind, ctx: LetterContext, *, paper: bool = False) -> RenderedLetter:
    """Render one letter to PDF, with the title and notification text that
    go into the MeMo header.

    `paper=True` is for letters SF1601 will print (citizens exempt from
    Digital Post): no mailbox button to point at, and a QR code of the link,
    since typing a URL from paper is where many give up. The QR code costs
    ~50 ms, so digital letters, the vast majority, go without."""
    parts = _render_blocks(f"letter_{kind.value}.j2", ctx, "title", "notification", "body",
                           paper=paper)
    # title/notification are auto-escaped markup; MeMo wants plain text.
    title = html.unescape(parts["title"])
    notification = _one_line(html.unescape(parts["notification"]))
    pdf = _draw_pdf(title, parts["body"], ctx)
    return RenderedLetter(
        kind=kind,
        title=title,
        notification=notification,
        pdf=pdf,
        filename=_FILENAMES[kind],
    )


def render_sms(kind: LetterKind, ctx: LetterContext) -> SmsText:
    """The SMS for `kind`: the long wording when it fits one GSM-7 SMS, else
    the short one (which may still take two segments with a very long link)."""
    parts = _render_blocks(f"sms_{kind.value}.j2", ctx, "long", "short")
    long_text, short_text = _one_line(parts["long"]), _one_line(parts["short"])
    long_len = sms_length(long_text)
    if long_len.gsm7 and long_len.segments == 1:
        return SmsText(long_text, long_len)
    return SmsText(short_text, sms_length(short_text))


_FILENAMES = {
    LetterKind.INVITATION: "Spørgeskema om jobcentret.pdf",
    LetterKind.REMINDER_1: "Påmindelse om spørgeskema.pdf",
    LetterKind.REMINDER_2: "Sidste påmindelse om spørgeskema.pdf",
}


def language_lines(languages: tuple[str, ...] | list[str]) -> list[tuple[str, str]]:
    """(language, line) for each offered language the letter has a line for, Danish first;
    none when Danish is all there is (nothing to choose)."""
    ordered = ["da", *(lang for lang in languages if lang != "da")]
    lines = [(lang, LANGUAGE_CHOICE[lang]) for lang in ordered if lang in LANGUAGE_CHOICE]
    return lines if len(lines) > 1 else []


def _one_line(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


@functools.cache
def _styles() -> dict[str, ParagraphStyle]:
    # Registered once per process: ReportLab keeps fonts in a global registry.
    for suffix, file in (("", "Vera.ttf"), ("-Bold", "VeraBd.ttf"),
                         ("-Italic", "VeraIt.ttf"), ("-BoldItalic", "VeraBI.ttf")):
        pdfmetrics.registerFont(TTFont(_FONT + suffix, str(_FONT_DIR / file)))
    pdfmetrics.registerFontFamily(
        _FONT, normal=_FONT, bold=_FONT + "-Bold",
        italic=_FONT + "-Italic", boldItalic=_FONT + "-BoldItalic",
    )
    body = ParagraphStyle("body", fontName=_FONT, fontSize=11, leading=15, spaceAfter=7)
    return {
        "body": body,
        "sender": ParagraphStyle("sender", parent=body, fontName=_FONT + "-Bold",
                                 alignment=TA_RIGHT, spaceAfter=0),
        "date": ParagraphStyle("date", parent=body, alignment=TA_RIGHT, spaceAfter=0,
                               textColor=colors.HexColor("#444444")),
        "title": ParagraphStyle("title", parent=body, fontName=_FONT + "-Bold",
                                fontSize=17, leading=22, spaceBefore=10, spaceAfter=12),
        "heading": ParagraphStyle("heading", parent=body, fontName=_FONT + "-Bold",
                                  fontSize=12.5, leading=17, spaceBefore=8, spaceAfter=4),
        "language": ParagraphStyle("language", parent=body, fontSize=8.5, leading=10.5, spaceAfter=0),
    }


@functools.cache
def _wide_font() -> str | None:
    try:
        pdfmetrics.registerFont(TTFont(_WIDE_FONT, _WIDE_FONT_FILE))
    except Exception:  # not installed here: such lines are left out  # noqa: BLE001
        return None
    return _WIDE_FONT


def _draws(font_name: str, text: str) -> bool:
    char_to_glyph = pdfmetrics.getFont(font_name).face.charToGlyph
    return all(ord(c) in char_to_glyph for c in text if not c.isspace())


_TIGHT = [("LEFTPADDING", (0, 0), (-1, -1), 0), ("RIGHTPADDING", (0, 0), (-1, -1), 6),
          ("TOPPADDING", (0, 0), (-1, -1), 0), ("BOTTOMPADDING", (0, 0), (-1, -1), 1), ("VALIGN", (0, 0), (-1, -1), "TOP")]


def _language_table(languages: tuple[str, ...], columns: int = 2, width: float = 160 * mm) -> Table | None:
    """The offered languages' lines in ``columns`` columns (so the letter stays one page), each
    in a font that has its letters; Arabic shaped, in visual order (ReportLab lays out left to
    right) and right-aligned."""
    cells = _language_paragraphs(languages)
    if not cells:
        return None
    rows = [cells[i:i + columns] + [""] * (columns - len(cells[i:i + columns])) for i in range(0, len(cells), columns)]
    table = Table(rows, colWidths=[width / columns] * columns, hAlign="LEFT")
    table.setStyle(TableStyle(_TIGHT))
    return table


def _qr_with_languages(link: str, languages: tuple[str, ...]):
    """A paper letter's QR code with the language lines beside it, in the space the code leaves."""
    qr = _qr_code(link)
    lines = _language_table(languages, columns=1, width=110 * mm)
    if lines is None:
        return qr
    table = Table([[qr, lines]], colWidths=[40 * mm, 110 * mm], hAlign="LEFT")
    table.setStyle(TableStyle(_TIGHT + [("VALIGN", (0, 0), (-1, -1), "MIDDLE")]))
    return table


def _language_paragraphs(languages: tuple[str, ...]) -> list:
    styles = _styles()
    paragraphs = []
    for lang, line in language_lines(languages):
        if lang in _RIGHT_TO_LEFT:
            line = _visual_rtl(line)
            if line is None:
                continue
        font = _FONT if _draws(_FONT, line) else _wide_font()
        if font is None or not _draws(font, line):
            continue
        style = ParagraphStyle(f"language-{lang}", parent=styles["language"], fontName=font,
                               alignment=TA_RIGHT if lang in _RIGHT_TO_LEFT else styles["language"].alignment)
        paragraphs.append(Paragraph(xml_escape(line), style))
    return paragraphs


def _visual_rtl(text: str) -> str | None:
    """Arabic in presentation forms and visual order, or None without the shaping packages."""
    try:
        import arabic_reshaper
        from bidi.algorithm import get_display
    except ImportError:
        return None
    return get_display(arabic_reshaper.reshape(text))


def _qr_code(link: str) -> Drawing:
    size = 32 * mm
    widget = QrCodeWidget(link, barLevel="M")
    x0, y0, x1, y1 = widget.getBounds()
    drawing = Drawing(size, size, transform=[size / (x1 - x0), 0, 0, size / (y1 - y0), 0, 0])
    drawing.add(widget)
    drawing.hAlign = "LEFT"
    return drawing


# reportlab keeps fonts and their per-document glyph assignments in process-wide state: two
# letters drawn at once in two threads (the sender renders its next batch while one is sent)
# can corrupt each other. Drawing is serialised; the letters from a cached template
# (letter_cache) are byte patches and need no lock.
_REPORTLAB = threading.Lock()


def _draw_pdf(title: str, body_markup: str, ctx: LetterContext, *, page_compression: int = 1,
              on_first_page=None) -> bytes:
    with _REPORTLAB:
        return _draw_pdf_unlocked(title, body_markup, ctx, page_compression=page_compression, on_first_page=on_first_page)


def _draw_pdf_unlocked(title: str, body_markup: str, ctx: LetterContext, *, page_compression: int, on_first_page) -> bytes:
    styles = _styles()
    story: list = [
        Paragraph(xml_escape(ctx.municipality), styles["sender"]),
        Paragraph(da_date(ctx.letter_date or date.today()), styles["date"]),
        Spacer(0, 14 * mm),
        Paragraph(xml_escape(title), styles["title"]),
    ]
    blocks = [block.strip() for block in re.split(r"\n\s*\n", body_markup)]
    for block in blocks:
        if not block:
            continue
        if block == "[[qr]]":
            story.append(_qr_with_languages(ctx.link, ctx.languages))
        elif block == "[[languages]]":
            # On paper the lines stand beside the QR code; in Digital Post they get their own rows.
            if "[[qr]]" not in blocks and (table := _language_table(ctx.languages)) is not None:
                story.append(table)
        elif block.startswith("## "):
            story.append(Paragraph(block[3:], styles["heading"]))
        else:
            story.append(Paragraph(block, styles["body"]))

    buffer = io.BytesIO()
    doc = SimpleDocTemplate(
        buffer,
        pagesize=A4,
        leftMargin=25 * mm, rightMargin=25 * mm, topMargin=20 * mm, bottomMargin=20 * mm,
        title=title,
        author=ctx.municipality,
        creator="Borgerblik",
        lang="da",
        pageCompression=page_compression,  # the PDF travels base64-encoded in every MeMo message
    )
    if on_first_page is not None:
        doc.build(story, onFirstPage=on_first_page)
    else:
        doc.build(story)
    return buffer.getvalue()
