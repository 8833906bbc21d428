"""What sampling's routers declare they need, as ``Annotated`` aliases (the shape of
``services.ingest.deps``): the unit of work, the settings, who the caller is; the round id is
``shared.app.RoundId``.

A router names the alias (``uow: Uow``, ``principal: Operator``) and gets it; who may call a
route is read from its signature (tools/authz_rules.py reads ``require_scopes`` from it too).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from services.sampling.config import SamplingSettings
from shared.app import RoundId, Uow
from shared.auth import Principal, require_scopes

__all__ = ["Operator", "RoundId", "Settings", "Uow"]



def _settings(request: Request) -> SamplingSettings:
    return request.app.state.settings


Settings = Annotated[SamplingSettings, Depends(_settings)]




# Round-wide: a draw or an allocation spans every municipality of the round, so only a caller
# acting for all of them (KL's operators) may run it.
Operator = Annotated[Principal, Depends(require_scopes("rounds:admin", "kommuner:all"))]
