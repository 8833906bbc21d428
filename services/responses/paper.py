"""The paper entry: a paper questionnaire keyed in by an operator, once.

The form names its link by the answer id printed on it (shared.answer_id; responses learns each
link's answer id from link.issued), or, for forms printed before answer ids, by the link token.
The entry spends the link exactly like a web answer (service.submit's conditional UPDATE), so a
second entry of the same form, or an entry after the citizen answered on the web, finds the link
spent: refused, and nothing is written.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import sqlalchemy as sa

from services.responses import service
from services.responses.config import ResponsesSettings
from services.responses.models import Respondent
from shared.bus import UnitOfWork


class UnknownAnswerId(Exception):
    """No link has this answer id (a valid id: the check digit matched); ``args[0]``."""


class AlreadyEntered(service.LinkUsed):
    """The form's link is spent (entered before, answered on the web, or opted out): a second
    entry is refused and nothing is written. ``form`` names the form as the operator gave it."""

    def __init__(self, status: str, form: str) -> None:
        super().__init__(status)
        self.form = form


def form_name(answer_id: str | None) -> str:
    return f"answer id {answer_id}" if answer_id else "this link"


async def link_of(uow: UnitOfWork, answer_id: str) -> service.LinkHash:
    token_hash = await uow.session.scalar(sa.select(Respondent.token_hash).where(Respondent.answer_id == answer_id))
    if token_hash is None:
        raise UnknownAnswerId(answer_id)
    return service.LinkHash(token_hash)


async def enter(
    uow: UnitOfWork,
    settings: ResponsesSettings,
    answers: Mapping[str, object],
    *,
    token: str | None,
    answer_id: str | None,
    entered_by: str,
    authorize: Callable[[Respondent], None],
    language: str = "da",
) -> Respondent:
    """Store one paper questionnaire's answers (mode ``paper``) and publish them. ``authorize``
    runs before anything is read back or written (an operator of one municipality cannot key in,
    or probe, another's citizens)."""
    link = await link_of(uow, answer_id) if answer_id is not None else token
    assert link is not None
    try:
        return await service.submit(uow, settings, link, answers, mode="paper", entered_by=entered_by,
                                    authorize=authorize, language=language)
    except service.LinkUsed as exc:
        raise AlreadyEntered(exc.status, form_name(answer_id)) from None
