"""What responses' routers declare they need, as ``Annotated`` aliases: the unit of work, the
runtime and settings, who the caller is, and the path parameters with a rule (the link's token;
the round id is ``shared.app.RoundId``).

A router names the alias (``uow: Uow``, ``principal: Interviewer``) and gets it; who may call a
route is read from its signature (tools/authz_rules.py reads ``require_scopes`` from it too).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Path, Request

from services.responses.config import ResponsesSettings
from services.responses.schemas import TOKEN_PATTERN
from shared.app import RoundId
from shared.auth import Principal, require_scopes
from shared.bus import UnitOfWork
from shared.runtime import ServiceRuntime

__all__ = [
    "Interviewer",
    "Kommunekode",
    "Operator",
    "PaperEntry",
    "QuestionnaireAdmin",
    "RoundId",
    "Runtime",
    "Settings",
    "Token",
    "Uow",
]

def _runtime(request: Request) -> ServiceRuntime:
    return request.app.state.runtime


def _settings(request: Request) -> ResponsesSettings:
    return request.app.state.settings


Runtime = Annotated[ServiceRuntime, Depends(_runtime)]
Settings = Annotated[ResponsesSettings, Depends(_settings)]


async def _uow(runtime: Runtime) -> AsyncIterator[UnitOfWork]:
    # Around the route function only: the transaction ends (rolled back unless the service
    # function committed) before the answer is sent.
    async with runtime.uow() as uow:
        yield uow


Uow = Annotated[UnitOfWork, Depends(_uow, scope="function")]

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
