"""What ingest's routers declare they need, as ``Annotated`` aliases (the FastAPI full-stack
template's ``deps.py``): the unit of work, the runtime and settings, who the caller is, and the
path parameters with a rule (the municipality code; the round id is ``shared.app.RoundId``).

A router names the alias (``uow: Uow``, ``principal: Operator``) and gets it; who may call a
route is read from its signature (tools/authz_rules.py reads ``require_scopes`` from it too).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Path, Request, status

from services.ingest.config import IngestSettings
from services.ingest.domain import kommunekode as kommunekoder
from shared.app import RoundId, Runtime, Uow
from shared.auth import Principal, get_principal, require_scopes

__all__ = [
    "DeliveryReader",
    "JobReader",
    "KeysAdmin",
    "Kommunekode",
    "Operator",
    "PrivacyAdmin",
    "ProfileWriter",
    "RoundId",
    "RuleReader",
    "Runtime",
    "Settings",
    "Uow",
    "Vendor",
]

ADMIN_SCOPE = "rounds:admin"  # KL's operator, with kommuner:all: every municipality's uploads of a round



def _settings(request: Request) -> IngestSettings:
    return request.app.state.settings


Settings = Annotated[IngestSettings, Depends(_settings)]





def _kommunekode(
    kommunekode: str = Path(pattern=kommunekoder.PATTERN, description="3 digits (101) or 4 (0101); stored as 3"),
) -> str:
    return kommunekoder.parse(kommunekode)


Kommunekode = Annotated[str, Depends(_kommunekode)]


def one_of_or_operator(*scopes: str):
    """Dependency: a caller holding one of ``scopes``, or KL's operator (rounds:admin with
    kommuner:all: round-wide administration is for a caller bound to every municipality). A
    dependency, so a caller without it gets 403 before a body is read or a row looked up."""
    wanted = frozenset(scopes)

    async def dependency(principal: Principal = Depends(get_principal)) -> Principal:
        if not (principal.scopes & wanted or {ADMIN_SCOPE, "kommuner:all"} <= principal.scopes):
            raise HTTPException(
                status.HTTP_403_FORBIDDEN, detail=f"missing scope: one of {', '.join(sorted(wanted))}, or {ADMIN_SCOPE} with kommuner:all"
            )
        return principal

    return dependency


# KL's operator: defines and runs rounds, sees every municipality's deliveries and jobs.
Operator = Annotated[Principal, Depends(require_scopes(ADMIN_SCOPE, "kommuner:all"))]
PrivacyAdmin = Annotated[Principal, Depends(require_scopes("privacy:admin", "kommuner:all"))]
KeysAdmin = Annotated[Principal, Depends(require_scopes("keys:admin", "kommuner:all"))]
# A case system's client delivering a municipality's extract.
Vendor = Annotated[Principal, Depends(require_scopes("extracts:write"))]
# Who reads the mapping and the column profiles: vendors (extracts:write), municipal readers
# (extracts:read), readers of the results (aggregates:read: the mapping says how citizens were
# grouped) and KL's operator.
RuleReader = Annotated[Principal, Depends(one_of_or_operator("extracts:read", "extracts:write", "aggregates:read"))]
JobReader = Annotated[Principal, Depends(one_of_or_operator("extracts:read", "extracts:write"))]
DeliveryReader = Annotated[Principal, Depends(one_of_or_operator("extracts:read"))]
ProfileWriter = Annotated[Principal, Depends(one_of_or_operator("extracts:write"))]
