"""Analytics' ``Annotated`` dependency aliases: a route names what it needs in its signature
(``releases: Releases``, ``principal: Reader``, ``paging: Paging``), and who may call it is read
from there (tools/authz_rules.py too): a bearer token or a BI key for the tables, KL's operator
for releases and calibration, a BI client for its keys. The unit of work and the runtime are the
shared ones (shared.app)."""

from __future__ import annotations

from typing import Annotated, Literal, NamedTuple

from fastapi import Depends, Path, Query, Request

from services.analytics import service
from services.analytics.bi_keys.auth import require_scopes_or_key
from services.analytics.bi_keys.domain import READ_SCOPE
from services.analytics.config import AnalyticsSettings
from services.analytics.domain import kommunekode as kommunekoder
from services.analytics.domain.publication import NATIONAL
from shared.app import Runtime, Uow
from shared.auth import Principal, ensure_kommune_access, require_scopes
from shared.events import ROUND_ID_PATTERN

__all__ = ["BiClient", "KommuneFilter", "LatestRelease", "Operator", "Paging", "Reader", "Releases",
    "RoundId", "Runtime", "Settings", "Uow"]


def _settings(request: Request) -> AnalyticsSettings:
    return request.app.state.settings


def _releases(request: Request) -> service.Releases:
    return request.app.state.releases


Settings = Annotated[AnalyticsSettings, Depends(_settings)]
# The round's releases: the latest of each is held in memory (service.Releases).
Releases = Annotated[service.Releases, Depends(_releases)]

# The tables are read with a bearer token or a BI key (services/analytics/bi_keys).
Reader = Annotated[Principal, Depends(require_scopes_or_key("aggregates:read"))]
# KL's operator: cuts releases, sets a round's calibration.
Operator = Annotated[Principal, Depends(require_scopes("rounds:admin", "kommuner:all"))]
# A BI client making, listing and revoking its keys with its OAuth2 token (a key never makes a key).
BiClient = Annotated[Principal, Depends(require_scopes(READ_SCOPE))]

RoundId = Annotated[str, Path(pattern=ROUND_ID_PATTERN, description="The survey round (e.g. 2026-1)")]


def _kommune_filter(
    principal: Reader,
    kommunekode: str | None = Query(
        None,
        description='Only this municipality\'s rows (its code, e.g. 751), or "national"; a municipality reads its own and national',
    ),
) -> str | None:
    """The municipality filter, a code given with 4 digits (0751) read as the stored 3 (751); a
    municipality the caller may not read for is refused (403)."""
    code = kommunekoder.stored(kommunekode)
    check_kommune(principal, code)
    return code


def check_kommune(principal: Principal, kommunekode: str | None) -> None:
    """403 unless the caller may read ``kommunekode``'s rows (every caller reads the national)."""
    if kommunekode and kommunekode != NATIONAL:
        ensure_kommune_access(principal, kommunekode)


KommuneFilter = Annotated[str | None, Depends(_kommune_filter)]


class Page(NamedTuple):
    format: Literal["json", "csv"]
    limit: int | None
    offset: int


def _page(
    format: Literal["json", "csv"] = Query(
        "json", description="json (a page with typed rows) or csv (the release on every row and in X-Release headers)"
    ),
    limit: int | None = Query(None, ge=1, description="Rows per page (at most the service's page size, 5000 by default)"),
    offset: int = Query(0, ge=0, description="Rows to skip (paging)"),
) -> Page:
    return Page(format, limit, offset)


Paging = Annotated[Page, Depends(_page)]


class RoundTable(NamedTuple):
    """What a table of one round is read from: its latest release (404 before its first), the
    caller, and the municipality filter (checked against the caller)."""

    release: service.Release
    principal: Principal
    kommunekode: str | None


async def _round_table(uow: Uow, releases: Releases, round_id: RoundId, principal: Reader, kommunekode: KommuneFilter) -> RoundTable:
    return RoundTable(await releases.latest(uow, round_id), principal, kommunekode)


LatestRelease = Annotated[RoundTable, Depends(_round_table)]
