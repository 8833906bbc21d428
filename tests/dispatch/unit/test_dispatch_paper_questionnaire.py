"""The paper questionnaire (domain/paper_questionnaire.py) and its step in a plan (domain/plan.py):
the PDF carries the answer id on every page, every question with its answer boxes' labels, the
link as text and as a QR code of exactly the link; the citizen's language where it can be
printed, else Danish; a plan refuses a paper step with a reminder it does not send."""

from __future__ import annotations

import io
from datetime import date

import pypdf
import pytest
from pydantic import ValidationError
from reportlab.graphics.barcode.qr import QrCodeWidget
from reportlab.graphics.shapes import Drawing

from services.dispatch.domain.paper_questionnaire import PaperContext, choose_language, render_paper_questionnaire, story
from services.dispatch.domain.plan import PAPER_ALL, PAPER_EXEMPT, RoundPlan, planned_steps
from services.responses.domain import load_questionnaire
from services.responses.printed import offered
from shared.events import PrintedQuestionnaire

LINK = "https://svar.borgerblik.dk/s/" + "Qw3_x" * 8 + "abc"
CTX = PaperContext(name="Åse Ærø", link=LINK, answer_id="48291-30575", municipality="Ærø Kommune",
                   deadline=date(2026, 12, 24), letter_date=date(2026, 12, 7))


@pytest.fixture(scope="module")
def languages() -> dict[str, PrintedQuestionnaire]:
    # The questionnaire as responses offers it for print (questionnaire.offered).
    return offered(load_questionnaire("kl_core_v1")).languages


def pages_text(pdf: bytes) -> list[str]:
    return [page.extract_text() for page in pypdf.PdfReader(io.BytesIO(pdf)).pages]


def test_the_pdf_has_the_answer_id_on_every_page_and_every_question(languages):
    paper = render_paper_questionnaire(languages, CTX, "da")
    assert paper.language == "da" and paper.pdf.startswith(b"%PDF-")
    pages = pages_text(paper.pdf)
    assert len(pages) >= 2
    assert all("Svar-id 48291-30575" in page for page in pages)
    text = "\n".join(pages)
    assert "Kære Åse Ærø" in text and LINK in text.replace("\n", "")
    for theme in languages["da"].themes:
        for question in theme.questions:
            assert f"[{question.id}]" in text
            for option in question.options:
                assert option.label in text


def test_the_qr_code_encodes_the_citizens_link(languages):
    widgets = [shape for flowable in story(languages["da"], CTX, {**_texts("da")}) if isinstance(flowable, Drawing)
               for shape in flowable.contents if isinstance(shape, QrCodeWidget)]
    assert [w.value for w in widgets] == [LINK]


def _texts(language: str) -> dict[str, str]:
    from services.dispatch.domain.paper_questionnaire import cover_texts

    return cover_texts()[language]


def test_english_where_the_questionnaire_has_it_danish_otherwise(languages):
    english = pages_text(render_paper_questionnaire(languages, CTX, "en").pdf)
    assert "Answer ID 48291-30575" in english[0] and "Dear Åse Ærø" in "".join(english)
    assert "Do you feel that you are met with trust at the job centre?" in "".join(english).replace("\n", " ")
    assert choose_language("pl", languages) == "da"  # no Polish questionnaire: Danish
    assert choose_language(None, languages) == "da"
    # A language the embedded font cannot draw falls back to Danish rather than print blanks.
    arabic = languages["en"].model_copy(update={"language": "ar", "title": "استبيان"})
    assert choose_language("ar", {**languages, "ar": arabic}) == "da"


def test_a_plan_sends_the_paper_questionnaire_with_a_reminder_it_sends():
    plan = RoundPlan(reminder_count=2, paper_questionnaire={"reminder": 2})
    assert ("reminder_2", PAPER_EXEMPT, 7.0) in planned_steps(plan)
    everyone = RoundPlan(reminder_count=1, paper_questionnaire={"reminder": 1, "everyone_unanswered": True})
    assert [s for s in planned_steps(everyone) if s[0] == "reminder_1"] == [("reminder_1", "letter", 7.0),
                                                                           ("reminder_1", PAPER_ALL, 7.0)]
    with pytest.raises(ValidationError, match="paper_questionnaire.reminder is 2, but the plan sends 1 reminder"):
        RoundPlan(reminder_count=1, paper_questionnaire={"reminder": 2})
    with pytest.raises(ValidationError, match="arm 'short' sends 0 reminder"):
        RoundPlan(reminder_count=2, paper_questionnaire={"reminder": 1}, arms={"short": {"weight": 1, "reminder_count": 0}})
    with pytest.raises(ValidationError):
        RoundPlan(paper_questionnaire={"reminder": 3})
