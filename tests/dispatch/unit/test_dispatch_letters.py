"""Letters and SMS texts: merge fields land in the PDF, æøå survive (checked
by extracting the text with pypdf), fonts are embedded, SMS fit one message."""

from __future__ import annotations

import dataclasses
import io
import re
import unicodedata

import pypdf
import pytest

from services.dispatch.domain.gsm import sms_length
from services.dispatch.domain.letters import (
    ContactInfo,
    LetterKind,
    da_date,
    render_letter,
    render_sms,
)

from dispatch_samples import LINK, MUNICIPALITY, NAME


def pdf_text(pdf: bytes) -> str:
    reader = pypdf.PdfReader(io.BytesIO(pdf))
    return "\n".join(page.extract_text() for page in reader.pages)


def flat(text: str) -> str:
    """Whitespace-insensitive form: line breaks fall where the layout puts them."""
    return re.sub(r"\s+", " ", text)


@pytest.mark.parametrize("kind", list(LetterKind))
def test_letter_pdf_contains_the_merge_fields(kind, rendered_letters):
    letter = rendered_letters[kind]
    assert letter.pdf.startswith(b"%PDF-")
    text = flat(pdf_text(letter.pdf))
    assert f"Kære {NAME}" in text  # æ, ø, å, Æ, Å as the citizen will see them
    assert LINK in text.replace(" ", "")
    assert MUNICIPALITY in text
    assert "15. september 2025" in text
    assert "99 74 14 00" in text and "jobcenter@rksk.dk" in text
    assert "1. september 2025" in text  # the letter's date
    assert "frivilligt" in text  # participation is voluntary: says so in every letter


def test_letters_differ_by_kind(rendered_letters):
    titles = {letter.title for letter in rendered_letters.values()}
    assert len(titles) == 3
    assert "Husk" in rendered_letters[LetterKind.REMINDER_1].title
    assert "Sidste" in rendered_letters[LetterKind.REMINDER_2].title
    assert "allerede svaret" in pdf_text(rendered_letters[LetterKind.REMINDER_1].pdf)


def test_title_and_notification_are_plain_and_short(rendered_letters):
    for letter in rendered_letters.values():
        assert len(letter.title) <= 256
        assert len(letter.notification) <= 160
        assert MUNICIPALITY in letter.notification
        assert "&amp;" not in letter.notification and "\n" not in letter.notification


def test_fonts_are_embedded_truetype(rendered_letters):
    reader = pypdf.PdfReader(io.BytesIO(rendered_letters[LetterKind.INVITATION].pdf))
    fonts = reader.pages[0]["/Resources"]["/Font"]
    used = [font.get_object() for font in fonts.values()]
    truetype = [f for f in used if f["/Subtype"] == "/TrueType"]
    assert truetype, "letters must not depend on the reader's fonts"
    for font in truetype:
        assert "/FontFile2" in font["/FontDescriptor"].get_object()


def test_markup_in_merge_fields_is_escaped(letter_ctx):
    ctx = dataclasses.replace(letter_ctx, name="Anne & <b>Bo</b>", municipality="Lyngby-Taarbæk Kommune")
    letter = render_letter(LetterKind.INVITATION, ctx)
    text = flat(pdf_text(letter.pdf))
    assert "Kære Anne & <b>Bo</b>" in text
    assert "Lyngby-Taarbæk Kommune vil gerne høre" in letter.notification


def test_privacy_notice_is_linked_when_configured(letter_ctx, rendered_letters):
    assert "behandler dine oplysninger" not in pdf_text(rendered_letters[LetterKind.INVITATION].pdf)
    ctx = dataclasses.replace(letter_ctx, privacy_url="https://www.rksk.dk/persondata")
    text = flat(pdf_text(render_letter(LetterKind.INVITATION, ctx).pdf))
    assert "behandler dine oplysninger, på https://www.rksk.dk/persondata" in text


def test_missing_name_and_partial_contact(letter_ctx):
    ctx = dataclasses.replace(letter_ctx, name=None, contact=ContactInfo("Jobcentret", phone="70 20 30 40"))
    text = flat(pdf_text(render_letter(LetterKind.REMINDER_2, ctx).pdf))
    assert "Hej" in text and "Kære" not in text
    assert "på telefon 70 20 30 40." in text and "e-mail" not in text


def test_context_repr_hides_name_and_link(letter_ctx):
    assert NAME not in repr(letter_ctx) and LINK not in repr(letter_ctx)


@pytest.mark.parametrize("kind", list(LetterKind))
def test_sms_fits_one_gsm_message_and_carries_the_link(kind, letter_ctx):
    sms = render_sms(kind, letter_ctx)
    assert LINK in sms.text
    assert sms.length.gsm7 and sms.length.segments == 1 and sms.length.units <= 160
    assert "Søren" not in sms.text  # no names in SMS: numbers can be stale


def test_sms_falls_back_to_the_short_wording_for_long_links(letter_ctx):
    long_link = "https://svar.borgerblik.dk/s/" + "A1b2C3d4" * 8
    ctx = dataclasses.replace(letter_ctx, link=long_link)
    sms = render_sms(LetterKind.REMINDER_1, ctx)
    assert long_link in sms.text
    assert sms.length.segments == 1
    assert sms.text.startswith("Husk at svare om jobcentret")


def test_gsm_arithmetic():
    assert sms_length("æøå ÆØÅ").gsm7
    assert sms_length("a" * 160).segments == 1
    assert sms_length("a" * 161).segments == 2
    assert sms_length("€" * 80).units == 160  # extension characters count double
    curly = sms_length("“citat”")  # typographic quotes force UCS-2
    assert not curly.gsm7 and curly.units == 7
    assert sms_length("x" * 71 + "“").segments == 2


def test_danish_dates():
    from datetime import date

    assert da_date(date(2025, 2, 3)) == "3. februar 2025"
    assert da_date(date(2025, 12, 24)) == "24. december 2025"


def test_paper_letters_get_a_qr_code_and_paper_wording(letter_ctx):
    digital = render_letter(LetterKind.INVITATION, letter_ctx)
    paper = render_letter(LetterKind.INVITATION, letter_ctx, paper=True)

    def rectangles(pdf: bytes) -> int:  # the QR code is drawn as filled squares
        page = pypdf.PdfReader(io.BytesIO(pdf)).pages[0]
        return page.get_contents().get_data().count(b" re")

    assert rectangles(paper.pdf) > rectangles(digital.pdf) + 100
    assert "Scan QR-koden" in pdf_text(paper.pdf)
    assert "Besvar spørgeskemaet" not in pdf_text(paper.pdf)  # no mailbox button on paper
    assert "Besvar spørgeskemaet" in flat(pdf_text(digital.pdf))
    assert LINK in pdf_text(paper.pdf).replace("\n", "")


# --- the language lines: in each offered language, how to choose it on the first page -----------


@pytest.mark.parametrize("paper", [False, True])
@pytest.mark.parametrize("kind", list(LetterKind))
def test_the_letter_says_in_each_offered_language_how_to_choose_it(kind, paper, letter_ctx):
    from services.dispatch.domain.letters import LANGUAGE_CHOICE

    ctx = dataclasses.replace(letter_ctx, privacy_url="https://www.rksk.dk/privatlivspolitik")  # the longest letter
    letter = render_letter(kind, ctx, paper=paper)
    reader = pypdf.PdfReader(io.BytesIO(letter.pdf))
    assert len(reader.pages) == 1  # eight more lines, still one page
    text = flat(pdf_text(letter.pdf))
    for lang, line in LANGUAGE_CHOICE.items():
        if lang == "ar":  # drawn shaped (presentation forms, which NFKC folds back) and in visual order
            words = unicodedata.normalize("NFKC", text).split()
            assert all(word.strip(".") in words or word in words or "." + word in words for word in line.split()), words
        else:
            assert line in text, lang
    assert "Venlig hilsen" in text  # nothing pushed off the page


def test_the_lines_follow_the_languages_the_round_offers(letter_ctx):
    from services.dispatch.domain.letters import LANGUAGE_CHOICE, language_lines

    assert language_lines(("da",)) == []  # nothing to choose: no lines
    assert language_lines(("so", "da", "ar")) == [("da", LANGUAGE_CHOICE["da"]), ("so", LANGUAGE_CHOICE["so"]),
                                                   ("ar", LANGUAGE_CHOICE["ar"])]
    only_danish = flat(pdf_text(render_letter(LetterKind.INVITATION, dataclasses.replace(letter_ctx, languages=("da",))).pdf))
    assert LANGUAGE_CHOICE["da"] not in only_danish and LANGUAGE_CHOICE["en"] not in only_danish
    two = flat(pdf_text(render_letter(LetterKind.INVITATION, dataclasses.replace(letter_ctx, languages=("da", "pl"))).pdf))
    assert LANGUAGE_CHOICE["pl"] in two and LANGUAGE_CHOICE["da"] in two and LANGUAGE_CHOICE["uk"] not in two


def test_lines_beyond_the_letter_font_are_drawn_in_an_embedded_font_that_has_them(rendered_letters):
    """Vera has no Cyrillic, no Arabic and no Polish ą/ę: those lines use DejaVu Sans, embedded."""
    reader = pypdf.PdfReader(io.BytesIO(rendered_letters[LetterKind.INVITATION].pdf))
    fonts = [font.get_object() for font in reader.pages[0]["/Resources"]["/Font"].values()]
    names = {str(font["/BaseFont"]) for font in fonts}
    assert any("DejaVu" in name for name in names), names
    for font in fonts:
        if font["/Subtype"] == "/TrueType":
            assert "/FontFile2" in font["/FontDescriptor"].get_object()


@pytest.mark.parametrize("exempt", [False, True])  # the cached template (Digital Post) and the full render (printed)
def test_composed_letters_list_the_languages_the_round_offers(exempt):
    """compose.render_job passes the round's offered languages (questionnaire.offered, on the
    job) to the letter; a job without them lists every language the letter has."""
    import base64
    import os
    from datetime import UTC, datetime, timedelta

    from lxml import etree

    from services.dispatch.compose import RenderConfig, RenderJob, render_jobs
    from services.dispatch.domain.letters import LANGUAGE_CHOICE
    from services.dispatch.domain.memo import MEMO_NS
    from shared.crypto import ContactDetails, seal_contact

    key = os.urandom(32)
    config = RenderConfig(contact_keyring={"c1": key}, link_key=os.urandom(32), survey_base_url="https://svar.borgerblik.dk/s/",
                          sms_via="dev_sink", response_deadline_days=21, default_sender_cvr="29189978",
                          sender_cvr_by_kommune={}, contact_name="jobcentret", contact_phone=None, contact_email=None,
                          privacy_url=None, validate_all=True)
    now = datetime.now(UTC)

    def job(pseudonym: str, languages) -> RenderJob:
        sealed = seal_contact(ContactDetails(cpr="010190-1234", name="Søren Ærø", phone_e164=None, digital_post_exempt=exempt),
                              round_id="r", pseudonym=pseudonym, key_id="c1", key=key)
        return RenderJob(key=f"{pseudonym}.invitation.letter", step="invitation", channel="letter", round_id="r",
                         kommunekode="492", pseudonym=pseudonym, token_nonce=os.urandom(16), contact=sealed.model_dump(),
                         created_at=now, expires_at=now + timedelta(days=35), letter_date=now.date(), languages=languages)

    m = f"{{{MEMO_NS}}}"
    texts = []
    for outcome in render_jobs(config, [job("p1", ("da", "pl")), job("p2", ("da",)), job("p3", None), job("p4", ("da", "pl"))]):
        pdf = base64.b64decode(etree.fromstring(outcome.message.memo_xml).findtext(f"{m}MessageBody/{m}MainDocument/{m}File/{m}content"))
        texts.append(flat(pdf_text(pdf)))
    polish, danish_only, every, polish_again = texts
    assert LANGUAGE_CHOICE["pl"] in polish and LANGUAGE_CHOICE["da"] in polish
    assert not [lang for lang in ("en", "uk", "tr", "so", "da-x-let") if LANGUAGE_CHOICE[lang] in polish]
    assert LANGUAGE_CHOICE["pl"] not in danish_only and LANGUAGE_CHOICE["da"] not in danish_only
    assert all(LANGUAGE_CHOICE[lang] in every for lang in ("da", "en", "uk", "pl"))
    # After letters with other languages from the same municipality and day: the cache keeps them apart.
    assert LANGUAGE_CHOICE["pl"] in polish_again and LANGUAGE_CHOICE["uk"] not in polish_again
