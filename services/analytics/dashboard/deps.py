"""What the dashboard's routes declare they need, as ``Annotated`` aliases (as services/ingest/deps.py):
the unit of work, who reads, and the path parameters with their rule.

A route names the alias (``uow: Uow``, ``principal: Reader``) and gets it; who may call a route is
read from its signature.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Path, Request

from services.analytics.dashboard.auth import dashboard_principal
from services.analytics.domain.publication import NATIONAL
from shared.app import RoundId
from shared.auth import Principal, ensure_kommune_access
from shared.bus import UnitOfWork

__all__ = ["KOMMUNE", "Kommune", "Reader", "RoundId", "Uow", "Viewer", "check_reader"]

KOMMUNE = r"^(national|[0-9]{3,4})$"  # a municipality's code, or the country


async def _uow(request: Request) -> AsyncIterator[UnitOfWork]:
    # Around the route function only: the transaction ends (rolled back unless a service
    # function committed) before the answer is sent.
    async with request.app.state.runtime.uow() as uow:
        yield uow


Uow = Annotated[UnitOfWork, Depends(_uow, scope="function")]
Kommune = Annotated[str, Path(pattern=KOMMUNE)]
# Anyone who may read results (aggregates:read), by bearer token or the dashboard's session.
Viewer = Annotated[Principal, Depends(dashboard_principal)]


def check_reader(principal: Principal, kommune: str) -> None:
    """A municipality's user sees its own municipality and the country; KL (kommuner:all) all."""
    if kommune != NATIONAL:
        ensure_kommune_access(principal, kommune)


async def _kommune_reader(kommune: Kommune, principal: Viewer) -> Principal:
    # Before anything else of the route (body validation included).
    check_reader(principal, kommune)
    return principal


# A reader of the municipality (or the country) in the route's path.
Reader = Annotated[Principal, Depends(_kommune_reader)]
