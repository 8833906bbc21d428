"""Shared fixtures for the dispatch unit tests: one synthetic citizen, the
municipality sending to them, and their rendered letters.

All personal data is invented (see dispatch_samples.py)."""

from __future__ import annotations

from datetime import date

import pytest

from services.dispatch.domain.letters import (
    ContactInfo,
    LetterContext,
    LetterKind,
    RenderedLetter,
    render_letter,
)
from services.dispatch.domain.memo import MemoRecipient, MemoSender, SurveyLetter

from dispatch_samples import CPR, LINK, MUNICIPALITY, NAME


@pytest.fixture(scope="session")
def letter_ctx() -> LetterContext:
    return LetterContext(
        name=NAME,
        link=LINK,
        municipality=MUNICIPALITY,
        deadline=date(2025, 9, 15),
        contact=ContactInfo("Jobcenter Ringkøbing-Skjern", "99 74 14 00", "jobcenter@rksk.dk"),
        letter_date=date(2025, 9, 1),
    )


@pytest.fixture(scope="session")
def memo_sender() -> MemoSender:
    return MemoSender(sender_id="29189978", label=MUNICIPALITY)


@pytest.fixture(scope="session")
def memo_recipient() -> MemoRecipient:
    return MemoRecipient(cpr=CPR, name=NAME)


@pytest.fixture(scope="session")
def rendered_letters(letter_ctx: LetterContext) -> dict[LetterKind, RenderedLetter]:
    return {kind: render_letter(kind, letter_ctx) for kind in LetterKind}


@pytest.fixture(scope="session")
def survey_letter(rendered_letters, memo_sender, memo_recipient) -> SurveyLetter:
    letter = rendered_letters[LetterKind.INVITATION]
    return SurveyLetter(
        sender=memo_sender,
        recipient=memo_recipient,
        title=letter.title,
        notification=letter.notification,
        pdf=letter.pdf,
        survey_url=LINK,
        pdf_filename=letter.filename,
        message_id="round-2025-3:resp-000042:invitation",
    )
