"""Responses' ``Annotated`` dependency aliases: a route names what it needs in its signature
(``uow: Uow``, ``principal: Interviewer``, ``token: Token``), and who may call it is read from
there (tools/authz_rules.py too). The unit of work, the runtime and the round id are the shared
ones (shared.app)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Request

from services.responses.config import ResponsesSettings
from services.responses.schemas import TOKEN_PATTERN
from shared.app import RoundId, Runtime, Uow
from shared.auth import Principal, require_scopes

__all__ = ["Interviewer", "Kommunekode", "Operator", "PaperEntry", "QuestionnaireAdmin", "RoundId",
    "Runtime", "Settings", "Token", "Uow"]


def _settings(request: Request) -> ResponsesSettings:
    return request.app.state.settings


Settings = Annotated[ResponsesSettings, Depends(_settings)]
Token = Annotated[str, Path(pattern=TOKEN_PATTERN, description="The token from the citizen's letter")]
Kommunekode = Annotated[str, Path(pattern=r"^\d{3}$")]

# An operator keying in paper questionnaires (bound to municipalities).
PaperEntry = Annotated[Principal, Depends(require_scopes("responses:paper"))]
# A municipality's administrator publishing its local supplement.
QuestionnaireAdmin = Annotated[Principal, Depends(require_scopes("rounds:admin"))]
# KL's operator: sets every round's questionnaire.
Operator = Annotated[Principal, Depends(require_scopes("rounds:admin", "kommuner:all"))]
# An interviewer calling citizens by phone (bound to municipalities).
Interviewer = Annotated[Principal, Depends(require_scopes("responses:interview"))]
