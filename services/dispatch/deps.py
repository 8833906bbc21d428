"""What dispatch's routers declare they need, as ``Annotated`` aliases (the shape of
``services.ingest.deps``): the unit of work, the settings, who the caller is, and the
municipality code in a path; the round id is ``shared.app.RoundId``.

A router names the alias (``uow: Uow``, ``principal: Operator``) and gets it; who may call a
route is read from its signature (tools/authz_rules.py reads ``require_scopes`` from it too).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Request

from services.dispatch.config import DispatchSettings
from shared.app import RoundId, Uow
from shared.auth import Principal, require_scopes

__all__ = ["Kommunekode", "Operator", "RoundId", "Settings", "Uow"]



def _settings(request: Request) -> DispatchSettings:
    return request.app.state.settings


Settings = Annotated[DispatchSettings, Depends(_settings)]




# A municipality as dispatch keeps it: three digits.
Kommunekode = Annotated[str, Path(pattern=r"^\d{3}$")]

# Dispatch plans, status, failures and previews span every municipality of a round: KL's operators only.
Operator = Annotated[Principal, Depends(require_scopes("rounds:admin", "kommuner:all"))]
