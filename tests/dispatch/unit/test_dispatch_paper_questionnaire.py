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


def test_compose_prints_for_the_exempt_retries_without_a_questionnaire_and_keeps_the_letter_home():
    """compose.render_job on the paper channels: an exempt citizen's paper questionnaire is a
    valid MeMo for physical post with the PDF; a citizen with Digital Post is skipped on
    paper_exempt and printed on paper_all; no questionnaire offered yet is a retry; an exempt
    citizen's reminder letter on a step with a paper questionnaire is not sent as well."""
    import base64
    import dataclasses
    import os
    from datetime import UTC, datetime, timedelta

    from lxml import etree

    from services.dispatch.channels.sf1601 import DigitalPostSF1601Channel, KombiValg, SF1601Config
    from services.dispatch.compose import RenderConfig, RenderJob, render_jobs
    from services.dispatch.domain.memo import MEMO_NS, validate_memo
    from shared.crypto import ContactDetails, seal_contact

    key, link_key = os.urandom(32), os.urandom(32)
    config = RenderConfig(contact_keyring={"c1": key}, link_key=link_key, survey_base_url="https://svar.borgerblik.dk/s/",
                          sms_via="dev_sink", response_deadline_days=21, default_sender_cvr="29189978",
                          sender_cvr_by_kommune={}, contact_name="jobcentret", contact_phone=None, contact_email=None,
                          privacy_url=None, validate_all=True)
    now = datetime.now(UTC)
    printed = offered(load_questionnaire("kl_core_v1")).model_dump(mode="json")

    def job(pseudonym: str, exempt: bool, channel: str, **changes) -> RenderJob:
        sealed = seal_contact(ContactDetails(cpr="010190-1234", name="Søren Ærø", phone_e164=None, digital_post_exempt=exempt),
                              round_id="r", pseudonym=pseudonym, key_id="c1", key=key)
        return RenderJob(key=f"{pseudonym}.reminder_1.{channel}", step="reminder_1", channel=channel, round_id="r",
                         kommunekode="492", pseudonym=pseudonym, token_nonce=os.urandom(16), contact=sealed.model_dump(),
                         created_at=now, expires_at=now + timedelta(days=35), letter_date=now.date(),
                         answer_id="48291-30575", **{"printed": printed, **changes})

    exempt, digital, everyone, waiting, letter = render_jobs(config, [
        job("p1", True, PAPER_EXEMPT), job("p2", False, PAPER_EXEMPT), job("p3", False, PAPER_ALL),
        job("p4", True, PAPER_EXEMPT, printed=None), job("p5", True, "letter", printed=None, paper_questionnaire_with_it=True),
    ])
    memo = exempt.message.memo_xml
    validate_memo(memo)
    m = f"{{{MEMO_NS}}}"
    pdf = base64.b64decode(etree.fromstring(memo).findtext(f"{m}MessageBody/{m}MainDocument/{m}File/{m}content"))
    assert "Svar-id 48291-30575" in pypdf.PdfReader(io.BytesIO(pdf)).pages[0].extract_text()
    channel = DigitalPostSF1601Channel(SF1601Config(endpoint="https://sf1601.invalid/kombi"))
    assert channel.kombi_valg_for(exempt.message) is KombiValg.PHYSICAL_POST
    assert digital.skip_reason == "has_digital_post"
    assert everyone.message.physical_post and channel.kombi_valg_for(everyone.message) is KombiValg.PHYSICAL_POST
    assert waiting.retry and waiting.message is None and waiting.error is None
    assert letter.skip_reason == "paper_questionnaire"
    on_its_own = render_jobs(config, [dataclasses.replace(job("p5", True, "letter"), printed=None)])[0]
    assert on_its_own.message is not None  # the printed letter, when its step sends no questionnaire


from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from services.dispatch.domain.plan import assign_arm, plan_for_arm  # noqa: E402


@given(reminders=st.integers(0, 2), paper_at=st.integers(1, 2), everyone=st.booleans(),
       arm_reminders=st.lists(st.one_of(st.none(), st.integers(0, 2)), max_size=3), pseudonym=st.text(min_size=1, max_size=20))
def test_a_plan_is_taken_exactly_when_every_arm_sends_the_paper_steps_reminder(reminders, paper_at, everyone, arm_reminders,
                                                                                pseudonym):
    arms = {f"arm{i}": {"weight": 1, "reminder_count": n} for i, n in enumerate(arm_reminders)}
    body = {"reminder_count": reminders, "arms": arms,
            "paper_questionnaire": {"reminder": paper_at, "everyone_unanswered": everyone}}
    sent_by_all = paper_at <= reminders and all(n is None or paper_at <= n for n in arm_reminders)
    if not sent_by_all:
        with pytest.raises(ValidationError, match="paper_questionnaire.reminder"):
            RoundPlan.model_validate(body)
        return
    plan = RoundPlan.model_validate(body)
    # Every citizen, whatever their arm, gets the paper step with the reminder it names, once.
    steps = planned_steps(plan_for_arm(plan, assign_arm(plan, "r", pseudonym)))
    paper = [(step, channel) for step, channel, _ in steps if channel in (PAPER_EXEMPT, PAPER_ALL)]
    assert paper == [(f"reminder_{paper_at}", PAPER_ALL if everyone else PAPER_EXEMPT)]
