"""Fast letters: render each letter layout once, then fill in name and link per citizen.

A full `render_letter` costs ~15-19 ms (Jinja2, platypus layout, TrueType subsetting,
compression); a national round is 200,000 letters per wave, which is an hour of CPU. Only two
things differ between the letters of one municipality, kind and day: the citizen's name and
the survey link. So a *template* PDF is rendered once with placeholders, and each letter is
the template with the placeholders overwritten **byte for byte, keeping every length**:

* the link: base URL + token, and tokens have a fixed length (43 characters, urlsafe base64),
  so a placeholder of the same length is replaced in place (in the page text, where ReportLab
  may have broken the long word over two lines, and in the link annotation's /URI);
* the name: a placeholder of `NAME_SLOT` narrow glyphs; the citizen's name, encoded the way
  ReportLab encodes that font subset, is padded with spaces to the same number of bytes
  (trailing spaces are invisible on a left-aligned line).

Because no length changes, object offsets and the xref table stay valid and a letter costs a
few microseconds. For that the page content stream must be uncompressed; the font streams
(the bulk of the file) are compressed once when the template is made.

TrueType subsets map characters to one-byte codes in order of first use, so the template
"primes" the body font with every character a name may use (Latin-1 letters and the common
Latin Extended-A ones) before drawing: their glyphs are embedded, and the code of each is
known. A name with any other character, or too long for the slot, and every paper letter
(its QR code encodes the link as drawn squares), falls back to a full `render_letter`.
"""

from __future__ import annotations

import base64
import binascii
import functools
import re
import zlib
from dataclasses import dataclass, replace
from datetime import date

from reportlab.pdfbase import pdfmetrics

from . import letters as _letters
from .letters import ContactInfo, LetterContext, LetterKind, RenderedLetter, render_letter

TOKEN_LENGTH = 43  # urlsafe base64 of a 256-bit HMAC, unpadded (services/dispatch/links.py)
NAME_SLOT = 48  # bytes in the content stream reserved for the escaped name
_NAME_PLACEHOLDER = "l" * NAME_SLOT  # narrow glyphs: the placeholder never wraps the line
_TOKEN_PLACEHOLDER = "Q" * TOKEN_LENGTH

# Characters a name may use on the fast path (others take the full render).
NAME_CHARSET = (
    "".join(chr(c) for c in range(0xC0, 0x100) if c not in (0xD7, 0xF7))
    + "ĀāĂăĄąĆćČčĎďĐđĒēĖėĘęĚěĞğĢģĪīĮįİıĶķĹĺĻļĽľŁłŃńŅņŇňŌōŐőŒœŔŕŘřŚśŞşŠšŢţŤťŪūŮůŰűŲųŸŹźŻżŽž"
    + "’´"
)


@dataclass(frozen=True)
class _Template:
    pdf: bytes
    title: str
    notification: str
    filename: str
    name_offset: int  # offset of the name slot
    token_offsets: tuple[tuple[int, int], ...]  # (offset, length) runs the token's characters fill, in order
    uri_offsets: tuple[int, ...]  # offsets of the token in link annotations
    char_codes: dict[str, int]  # character -> one-byte code in the body font's subset 0
    b64: bytes = b""  # the template PDF in base64 (as it travels in MeMo), patched per letter
    b64_blocks: tuple[tuple[int, int], ...] = ()  # 3-byte-aligned PDF ranges that differ per letter


def _escape_code(code: int) -> bytes:
    if code in (0x28, 0x29, 0x5C):  # ( ) \
        return b"\\" + bytes([code])
    if 32 <= code < 127:
        return bytes([code])
    return b"\\%03o" % code


def _encode_name(name: str, codes: dict[str, int]) -> bytes | None:
    out = bytearray()
    for ch in name:
        if 32 <= ord(ch) < 127:
            out += _escape_code(ord(ch))
        elif (code := codes.get(ch)) is not None and code < 256:
            out += _escape_code(code)
        else:
            return None
    return bytes(out)


def _compress_static_streams(pdf: bytes, keep: set[int]) -> bytes:
    """Flate-compress every unfiltered stream except the objects in `keep`, and rebuild the
    xref table (the template is made once, so this may be slow-ish)."""
    xref_at = int(re.search(rb"startxref\s+(\d+)", pdf[-64:]).group(1))
    head, _, body = pdf[xref_at:].partition(b"\n")
    counts = re.match(rb"0 (\d+)\n", body)
    n = int(counts.group(1))
    table = body[counts.end() :]
    offsets = [int(table[i * 20 : i * 20 + 10]) for i in range(n)]
    order = sorted(range(1, n), key=lambda i: offsets[i])
    out = bytearray(pdf[: offsets[order[0]]])
    new_offsets = [0] * n
    for pos, obj in enumerate(order):
        start = offsets[obj]
        end = offsets[order[pos + 1]] if pos + 1 < len(order) else xref_at
        chunk = pdf[start:end]
        match = re.match(rb"(\d+ 0 obj\n<<)\n/Length (\d+)( /Length1 \d+)?\n>>\nstream\r?\n", chunk)
        if match and obj not in keep:
            length = int(match.group(2))
            data = chunk[match.end() : match.end() + length]
            packed = zlib.compress(data, 9)
            chunk = (
                match.group(1)
                + b"\n/Filter /FlateDecode /Length %d%s\n>>\nstream\n" % (len(packed), match.group(3) or b"")
                + packed
                + b"\nendstream\nendobj\n"
            )
        new_offsets[obj] = len(out)
        out += chunk
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % n
    for obj in range(1, n):
        out += b"%010d 00000 n \n" % new_offsets[obj]
    trailer = table[n * 20 :]
    out += trailer.split(b"startxref")[0] + b"startxref\n%d\n%%%%EOF\n" % xref
    return bytes(out)


def _object_containing(pdf: bytes, offset: int) -> int:
    start = pdf.rfind(b" 0 obj\n", 0, offset)
    line_start = pdf.rfind(b"\n", 0, start) + 1
    return int(pdf[line_start:start])


@functools.lru_cache(maxsize=512)
def _template(kind: LetterKind, base_url: str, municipality: str, deadline: date, letter_date: date,
              contact: ContactInfo, privacy_url: str | None, languages: tuple[str, ...]) -> _Template:
    ctx = LetterContext(name=_NAME_PLACEHOLDER, link=base_url + _TOKEN_PLACEHOLDER, municipality=municipality,
                        deadline=deadline, contact=contact, letter_date=letter_date, privacy_url=privacy_url,
                        languages=languages)
    captured: dict[str, dict] = {}

    def prime(canvas, _doc) -> None:
        font = pdfmetrics.getFont(_letters._FONT)
        font.splitString(NAME_CHARSET, canvas._doc)  # assigns codes, so the glyphs get embedded
        captured["assignments"] = font.state[canvas._doc].assignments

    parts = _letters._render_blocks(f"letter_{kind.value}.j2", ctx, "title", "notification", "body")
    import html

    title = html.unescape(parts["title"])
    notification = _letters._one_line(html.unescape(parts["notification"]))
    raw = _letters._draw_pdf(title, parts["body"], ctx, page_compression=0, on_first_page=prime)
    codes = {chr(u): c for u, c in captured["assignments"].items() if u > 127}

    name_at = raw.find(_NAME_PLACEHOLDER.encode())
    keep = {_object_containing(raw, name_at)}
    pdf = _compress_static_streams(raw, keep)

    name_offset = pdf.find(_NAME_PLACEHOLDER.encode())
    if name_offset < 0 or pdf.find(_NAME_PLACEHOLDER.encode(), name_offset + 1) >= 0:
        raise RuntimeError("letter template: the name placeholder must occur exactly once")
    # The token in the page text, possibly broken over lines: "(...QQQQ) Tj T* (QQ) Tj".
    token_runs: list[tuple[int, int]] = []
    # Link annotations come before the page content in the file; the text comes after the name.
    url_in_text = pdf.find(b"(" + (base_url + "Q").encode(), name_offset)
    pos, remaining = url_in_text + 1 + len(base_url), TOKEN_LENGTH
    while remaining:
        run = re.compile(rb"Q+").search(pdf, pos)
        take = min(len(run.group()), remaining)
        token_runs.append((run.start(), take))
        remaining -= take
        pos = run.start() + take
    uris = tuple(m.start() + 6 + len(base_url) for m in re.finditer(rb"/URI \(" + re.escape(base_url.encode()), pdf))
    # Base64 maps each 3 bytes to 4 characters independently, so a letter's base64 is the
    # template's with only the groups over the name and the token re-encoded.
    ranges = [(name_offset, name_offset + NAME_SLOT), *((o, o + n) for o, n in token_runs),
              *((o, o + TOKEN_LENGTH) for o in uris)]
    blocks: list[list[int]] = []
    for start, end in sorted((s - s % 3, min(len(pdf), e + (-e) % 3)) for s, e in ranges):
        if blocks and start <= blocks[-1][1]:
            blocks[-1][1] = max(blocks[-1][1], end)
        else:
            blocks.append([start, end])
    return _Template(pdf, title, notification, _letters._FILENAMES[kind], name_offset, tuple(token_runs), uris, codes,
                     base64.b64encode(pdf), tuple((s, e) for s, e in blocks))


_TOKEN_CHARS = re.compile(r"[A-Za-z0-9_-]+")


def render_letter_fast(kind: LetterKind, ctx: LetterContext, *, paper: bool = False) -> RenderedLetter:
    """Like `render_letter`, from a cached template when the letter allows it."""
    return render_letter_fast_b64(kind, ctx, paper=paper)[0]


def render_letter_fast_b64(kind: LetterKind, ctx: LetterContext, *, paper: bool = False) -> tuple[RenderedLetter, bytes]:
    """`render_letter_fast` plus the PDF in base64 (what MeMo carries): from a template, only the
    base64 groups over the name and the token are encoded per letter (~100 bytes of ~50 KB)."""
    template, pdf = _patched(kind, ctx, paper)
    if template is None:
        letter = render_letter(kind, ctx, paper=paper)
        return letter, base64.b64encode(letter.pdf)
    b64 = bytearray(template.b64)
    for start, end in template.b64_blocks:
        b64[start // 3 * 4 : end // 3 * 4 + (4 if end % 3 else 0)] = binascii.b2a_base64(pdf[start:end], newline=False)
    letter = RenderedLetter(kind=kind, title=template.title, notification=template.notification, pdf=bytes(pdf),
                            filename=template.filename)
    return letter, bytes(b64)


def _patched(kind: LetterKind, ctx: LetterContext, paper: bool) -> tuple[_Template | None, bytearray | None]:
    base_url, _, token = ctx.link.rpartition("/")
    base_url += "/"
    if paper or ctx.name is None or len(token) != TOKEN_LENGTH or not _TOKEN_CHARS.fullmatch(token):
        return None, None
    template = _template(kind, base_url, ctx.municipality, ctx.deadline, ctx.letter_date or date.today(),
                         ctx.contact, ctx.privacy_url, tuple(ctx.languages))
    encoded = _encode_name(ctx.name, template.char_codes)
    if encoded is None or len(encoded) > NAME_SLOT:
        return None, None
    pdf = bytearray(template.pdf)
    pdf[template.name_offset : template.name_offset + NAME_SLOT] = encoded.ljust(NAME_SLOT, b" ")
    token_bytes = token.encode()
    i = 0
    for offset, length in template.token_offsets:
        pdf[offset : offset + length] = token_bytes[i : i + length]
        i += length
    for offset in template.uri_offsets:
        pdf[offset : offset + TOKEN_LENGTH] = token_bytes
    return template, pdf


__all__ = ["NAME_CHARSET", "render_letter_fast", "render_letter_fast_b64", "replace"]
