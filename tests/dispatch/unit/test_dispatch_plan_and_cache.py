"""Plans and experiment arms (pure), the municipality table, and the cached letter renderer."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime, time

import pypdf
import pytest
from pydantic import ValidationError

from services.dispatch.domain.letter_cache import render_letter_fast
from services.dispatch.domain.letters import ContactInfo, LetterContext, LetterKind, render_letter
from services.dispatch.domain.municipalities import municipalities, municipality_name
from services.dispatch.domain.plan import RoundPlan, assign_arm, plan_for_arm, planned_steps

TOKEN = "abcDEF_-0123456789abcdefghijklmnopqrstuvwxy"


def test_default_plan_is_an_invitation_and_two_reminders_a_week_apart():
    from services.dispatch.domain.schedule import Schedule, Window, due_time

    start = datetime(2025, 9, 1, 8, tzinfo=UTC)
    steps = planned_steps(RoundPlan())
    assert [(s, c) for s, c, _ in steps] == [("invitation", "letter"), ("reminder_1", "letter"), ("reminder_2", "letter")]
    schedule = Schedule("in_fieldwork", invitation_at=start, window=Window(time(0), time(23, 59, 59)))
    assert [(due_time(schedule, s, c, i) - start).days for s, c, i in steps] == [0, 7, 14]


def test_arms_are_reproducible_roughly_balanced_and_change_the_plan():
    plan = RoundPlan.model_validate({"arms": {"sms_reminder": {"weight": 0.5, "reminder_channels": ["letter", "sms"]},
                                              "no_sms": 0.5}, "experiment_seed": "s1"})
    arms = [assign_arm(plan, "r", f"pseudo-{i}") for i in range(10_000)]
    assert arms == [assign_arm(plan, "r", f"pseudo-{i}") for i in range(10_000)]
    share = arms.count("sms_reminder") / len(arms)
    assert 0.47 < share < 0.53
    other_seed = plan.model_copy(update={"experiment_seed": "s2"})
    assert arms != [assign_arm(other_seed, "r", f"pseudo-{i}") for i in range(10_000)]
    assert plan_for_arm(plan, "sms_reminder").reminder_channels == ["letter", "sms"]
    assert plan_for_arm(plan, "no_sms").reminder_channels == ["letter"]
    assert assign_arm(RoundPlan(), "r", "p") is None


def test_plan_validation():
    with pytest.raises(ValidationError):
        RoundPlan(reminder_count=3)
    with pytest.raises(ValidationError):
        RoundPlan.model_validate({"arms": {"bad name!": 1}})


def test_all_98_municipalities():
    table = municipalities()
    assert len(table) == 98
    assert table["101"] == "Københavns Kommune" and table["760"] == "Ringkøbing-Skjern Kommune"
    assert municipality_name("999") == "Kommune 999"


def _ctx(name: str, link: str) -> LetterContext:
    return LetterContext(name=name, link=link, municipality="Ærø Kommune", deadline=date(2025, 9, 22),
                         contact=ContactInfo("jobcentret i Ærø Kommune"), letter_date=date(2025, 9, 1))


@pytest.mark.parametrize("kind", list(LetterKind))
def test_cached_letter_reads_like_the_full_render(kind):
    ctx = _ctx("Søren Ærø-Åberg (Łukasz)", "https://svar.borgerblik.dk/s/" + TOKEN)
    fast = render_letter_fast(kind, ctx)
    full = render_letter(kind, ctx)
    fast_text = pypdf.PdfReader(io.BytesIO(fast.pdf)).pages[0].extract_text()
    full_text = pypdf.PdfReader(io.BytesIO(full.pdf)).pages[0].extract_text()
    assert "Kære Søren Ærø-Åberg (Łukasz)" in fast_text
    assert TOKEN in fast_text.replace("\n", "")
    assert "".join(fast_text.split()) == "".join(full_text.split())  # the long link may break elsewhere
    uris = [a.get_object()["/A"]["/URI"] for a in pypdf.PdfReader(io.BytesIO(fast.pdf)).pages[0]["/Annots"]]
    assert ctx.link in uris
    assert (fast.title, fast.notification, fast.filename) == (full.title, full.notification, full.filename)


def test_cached_letters_fall_back_to_the_full_render_when_they_must():
    long_name = "Ærtebølle-Østergård Åkjær Bøgh Sørensen"  # escaped, longer than the name slot
    odd = _ctx(long_name, "https://svar.borgerblik.dk/s/" + TOKEN)
    text = pypdf.PdfReader(io.BytesIO(render_letter_fast(LetterKind.INVITATION, odd).pdf)).pages[0].extract_text()
    assert long_name in text
    paper = render_letter_fast(LetterKind.INVITATION, _ctx("A B", "https://svar.borgerblik.dk/s/" + TOKEN), paper=True)
    assert paper.pdf.startswith(b"%PDF-")


def test_letters_rendered_in_threads_at_once_read_right():
    """The sender renders its next batch in a thread while one is sent, so templates are built
    and letters drawn concurrently: every letter still carries its own municipality, name and
    link (reportlab's process-wide font state is drawn under one lock)."""
    from concurrent.futures import ThreadPoolExecutor

    from services.dispatch.domain import letter_cache

    letter_cache._template.cache_clear()
    kommuner = [name for _, name in sorted(municipalities().items())][:24]

    def render(i: int) -> tuple[str, str, str, bytes]:
        name = f"Borger Nr{i:02d} Ærø"
        link = "https://svar.borgerblik.dk/s/" + TOKEN[:-2] + f"{i:02d}"
        ctx = LetterContext(name=name, link=link, municipality=kommuner[i % len(kommuner)], deadline=date(2025, 9, 22),
                            contact=ContactInfo("jobcentret"), letter_date=date(2025, 9, 1 + i % 20))
        letter = render_letter_fast(LetterKind.INVITATION if i % 2 else LetterKind.REMINDER_1, ctx)
        return name, link, kommuner[i % len(kommuner)], letter.pdf

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(render, range(48)))
    for name, link, kommune, pdf in results:
        text = "".join(pypdf.PdfReader(io.BytesIO(pdf)).pages[0].extract_text().split())
        assert "".join(name.split()) in text and link.rsplit("/", 1)[1] in text and "".join(kommune.split()) in text
