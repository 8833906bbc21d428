"""Thin routers: REST tables (JSON/CSV) and the OData feed, all from each round's latest release,
and the releases themselves (list; cut by the KL operator)."""

from __future__ import annotations

import csv
import io
from typing import Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from fastapi.responses import JSONResponse, Response

from services.analytics import odata, service
from services.analytics.domain.publication import INDICATOR_COLUMNS, NATIONAL, RATE_COLUMNS
from services.analytics.schemas import ReleaseIn, ReleaseOut, ResponseRates, RoundOut, TablePage
from shared.auth import Principal, ensure_kommune_access, require_scopes

router = APIRouter(tags=["aggregates"])
odata_router = APIRouter(prefix="/odata", tags=["odata"])
ROUND_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
reader = require_scopes("aggregates:read")
operator = require_scopes("rounds:admin", "kommuner:all")
Format = Literal["json", "csv"]


def _releases(request: Request) -> service.Releases:
    return request.app.state.releases


def _not_found(round_id: str, exc: LookupError) -> HTTPException:
    if isinstance(exc, service.NotReleased):
        return HTTPException(
            404, detail=f"round {round_id} has no release yet: its tables are published from its first release on"
        )
    return HTTPException(404, detail=f"no data for round {round_id}")


async def _release(request: Request, round_id: str) -> service.Release:
    async with request.app.state.runtime.uow() as uow:
        try:
            return await _releases(request).latest(uow, round_id)
        except (service.RoundNotFound, service.NotReleased) as exc:
            raise _not_found(round_id, exc) from None


def _check_kommune(principal: Principal, kommunekode: str | None) -> None:
    if kommunekode and kommunekode != NATIONAL:
        ensure_kommune_access(principal, kommunekode)


def _csv_value(value):
    return "" if value is None else ("true" if value is True else "false" if value is False else value)


def _table(
    request: Request,
    rows: list[dict],
    columns: tuple[str, ...],
    fmt: str,
    limit: int | None,
    offset: int,
    round_id: str | None,
    filename: str,
    release: service.ReleaseInfo | None = None,
):
    """One page of ``rows``; ``release``: the release they are from, said on the page (JSON),
    on every row and in the headers (CSV). Without one the rows say it themselves (trends)."""
    settings = request.app.state.settings
    limit = min(limit or settings.max_page_size, settings.max_page_size)
    page = rows[offset : offset + limit]
    stamp = release.page_stamp() if release is not None else {}
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(columns + tuple(stamp))
        extra = [_csv_value(v) for v in stamp.values()]
        for row in page:
            writer.writerow([_csv_value(row[c]) for c in columns] + extra)
        headers = {"Content-Disposition": f'attachment; filename="{filename}.csv"', "X-Total-Count": str(len(rows))}
        if release is not None:
            headers.update({"X-Release": str(release.release), "X-Release-Phase": release.phase,
                            "X-Release-Built-At": release.built_at_text, "X-Release-Scope": release.scope})
        return Response(buffer.getvalue(), media_type="text/csv; charset=utf-8", headers=headers)
    return TablePage(
        round_id=round_id,
        **stamp,
        suppression_threshold=settings.suppression_threshold,
        caution_below=settings.caution_below,
        total=len(rows),
        offset=offset,
        limit=limit,
        columns=list(columns),
        rows=page,
    )


@router.get("/rounds", response_model=list[RoundOut], summary="Rounds with published data, oldest first")
async def get_rounds(request: Request, principal: Principal = Depends(reader)) -> list[RoundOut]:
    async with request.app.state.runtime.uow() as uow:
        return [RoundOut(round_id=r.round_id, questionnaire_id=r.questionnaire_id) for r in await service.list_rounds(uow)]


@router.get(
    "/rounds/{round_id}/response-rates",
    response_model=ResponseRates,
    summary="Answers and response rate per municipality and nationally; small cells suppressed",
)
async def get_response_rates(
    request: Request,
    round_id: str = Path(pattern=ROUND_PATTERN),
    principal: Principal = Depends(reader),
) -> ResponseRates:
    async with request.app.state.runtime.uow() as uow:
        try:
            return await service.response_rates(uow, _releases(request), round_id, principal)
        except (service.RoundNotFound, service.NotReleased) as exc:
            raise _not_found(round_id, exc) from None


@router.get(
    "/rounds/{round_id}/response-rates/detail",
    response_model=TablePage,
    summary="Response rates per municipality x target group or x dispatch arm, with margins",
)
async def get_response_rate_table(
    request: Request,
    round_id: str = Path(pattern=ROUND_PATTERN),
    dimension: Literal["maalgruppe", "arm"] | None = None,
    kommunekode: str | None = None,
    level: str | None = None,
    format: Format = "json",
    limit: int | None = Query(None, ge=1),
    offset: int = Query(0, ge=0),
    principal: Principal = Depends(reader),
):
    _check_kommune(principal, kommunekode)
    release = await _release(request, round_id)
    rows = service.select_rows(
        service.visible(release.publication.rate_rows, principal), {"dimension": dimension, "kommunekode": kommunekode, "level": level}
    )
    return _table(request, rows, RATE_COLUMNS, format, limit, offset, round_id, f"{round_id}-response-rates", release.info)


@router.get(
    "/rounds/{round_id}/indicators",
    response_model=TablePage,
    summary="Indicator tables (weighted with SE and 95 % CI, unweighted beside), suppressed",
    description=(
        "One row per question x dimension x municipality (or national) x level (or total). "
        "Suppressed cells have every figure null and suppressed=true; caution=true marks few answers. "
        "The rows are the round's latest release (release, phase, built_at); 404 before its first."
    ),
)
async def get_indicators(
    request: Request,
    round_id: str = Path(pattern=ROUND_PATTERN),
    question: str | None = None,
    dimension: Literal["maalgruppe", "gender", "age_band", "duration_band"] | None = None,
    kommunekode: str | None = None,
    level: str | None = None,
    format: Format = "json",
    limit: int | None = Query(None, ge=1),
    offset: int = Query(0, ge=0),
    principal: Principal = Depends(reader),
):
    _check_kommune(principal, kommunekode)
    release = await _release(request, round_id)
    rows = service.visible(release.publication.indicators(question, dimension, kommunekode), principal)
    if level is not None:
        rows = service.select_rows(rows, {"level": level})
    return _table(request, rows, INDICATOR_COLUMNS, format, limit, offset, round_id, f"{round_id}-indicators", release.info)


@router.get("/trends", response_model=TablePage, summary="Change since the previous round, with a significance flag")
async def get_trends(
    request: Request,
    questionnaire_id: str | None = None,
    question: str | None = None,
    kommunekode: str | None = None,
    indicator: Literal["mean", "top2_share"] | None = None,
    format: Format = "json",
    limit: int | None = Query(None, ge=1),
    offset: int = Query(0, ge=0),
    principal: Principal = Depends(reader),
):
    _check_kommune(principal, kommunekode)
    async with request.app.state.runtime.uow() as uow:
        rows = await service.trends(uow, _releases(request), questionnaire_id)
    rows = service.select_rows(service.visible(rows, principal), {"question": question, "kommunekode": kommunekode, "indicator": indicator})
    return _table(request, rows, service.TREND_COLUMNS, format, limit, offset, None, "trends")


@router.get(
    "/rounds/{round_id}/releases",
    response_model=list[ReleaseOut],
    summary="The round's releases, oldest first; every table is served from the latest",
)
async def get_releases(
    request: Request, round_id: str = Path(pattern=ROUND_PATTERN), principal: Principal = Depends(reader)
) -> list[ReleaseOut]:
    async with request.app.state.runtime.uow() as uow:
        try:
            infos = await _releases(request).list(uow, round_id)
        except service.RoundNotFound as exc:
            raise _not_found(round_id, exc) from None
    return [_release_out(i) for i in infos]


def _release_out(info: service.ReleaseInfo) -> ReleaseOut:
    return ReleaseOut(round_id=info.round_id, release=info.release, phase=info.phase, built_at=info.built_at,
                      version=info.version, scope=info.scope, answers_published=info.answers_published)


@router.post(
    "/rounds/{round_id}/releases",
    response_model=ReleaseOut,
    status_code=201,
    summary="Cut a release of the round now: preliminary, or final (a final may be cut again, a revision)",
    description=(
        "Builds the round's tables from its current data and publishes them as its next release. "
        "A preliminary publishes its `scope`: `rates` (response rates only, no answers), `totals` (national "
        "cells and municipal totals, every question: a release point with answers during fieldwork) or `all`; "
        "by default the configured preliminary scope. A final publishes every cell (scope `all`). "
        "Preliminary releases are also cut automatically while a round changes, until it has a final one; "
        "a preliminary release after a final one is refused (409)."
    ),
)
async def post_release(
    request: Request, body: ReleaseIn, round_id: str = Path(pattern=ROUND_PATTERN), principal: Principal = Depends(operator)
) -> ReleaseOut:
    try:
        info = await service.cut_release(_releases(request), round_id, body.phase, body.scope)
    except service.RoundNotFound as exc:
        raise _not_found(round_id, exc) from None
    except service.ReleaseRefused as exc:
        raise HTTPException(409, detail=str(exc)) from None
    return _release_out(info)


# -- OData v4 ---------------------------------------------------------------------------------------------

ODATA_HEADERS = {"OData-Version": "4.0"}


def _odata_json(body: dict) -> JSONResponse:
    return JSONResponse(body, media_type=odata.JSON_MEDIA_TYPE, headers=ODATA_HEADERS)


def _odata_root(request: Request) -> str:
    return str(request.url_for("odata_service_document")).rstrip("/")


@odata_router.get("/", name="odata_service_document", summary="OData service document")
async def odata_service_document(request: Request, principal: Principal = Depends(reader)) -> JSONResponse:
    return _odata_json(
        {
            "@odata.context": f"{_odata_root(request)}/$metadata",
            "value": [{"name": es.name, "kind": "EntitySet", "url": es.name} for es in odata.ENTITY_SETS.values()],
        }
    )


@odata_router.get("/$metadata", summary="OData CSDL")
async def odata_metadata(principal: Principal = Depends(reader)) -> Response:
    return Response(odata.metadata_xml(), media_type="application/xml", headers=ODATA_HEADERS)


@odata_router.get("/{entity_set}", summary="An OData entity set ($filter eq/and, $select, $top, $skip, $count)")
async def odata_entity_set(request: Request, entity_set: str, principal: Principal = Depends(reader)) -> JSONResponse:
    es = odata.ENTITY_SETS.get(entity_set)
    if es is None:
        raise HTTPException(404, detail=f"no entity set {entity_set!r}")
    params = dict(request.query_params)
    try:
        conditions = odata.parse_filter(params.get("$filter"), es.columns)
        columns = odata.parse_select(params.get("$select"), es.columns)
        top = int(params["$top"]) if "$top" in params else None
        skip = int(params.get("$skip", 0))
        if (top is not None and top < 0) or skip < 0:
            raise ValueError
    except odata.ODataQueryError as exc:
        raise HTTPException(400, detail=str(exc)) from None
    except ValueError:
        raise HTTPException(400, detail="$top and $skip must be non-negative integers") from None
    if isinstance(conditions.get("kommunekode"), str):
        _check_kommune(principal, conditions["kommunekode"])

    async with request.app.state.runtime.uow() as uow:
        releases = _releases(request)
        if es.name == "Trends":
            rows = await service.trends(uow, releases, conditions.get("questionnaire_id"))
        else:
            rounds = await service.list_rounds(uow)
            if isinstance(conditions.get("round_id"), str):
                rounds = [r for r in rounds if r.round_id == conditions["round_id"]]
            rows = []
            for release in await service.latest_releases(uow, releases, rounds):
                stamp = release.info.stamp()
                published = release.publication.indicator_rows if es.name == "Indicators" else release.publication.rate_rows
                rows.extend({**r, **stamp} for r in published)
    rows = [r for r in (odata.with_id(es, r) for r in service.visible(rows, principal)) if odata.matches(r, conditions)]

    page_size = request.app.state.settings.max_page_size
    wanted = len(rows) - skip if top is None else top
    take = max(min(wanted, page_size), 0)
    page = rows[skip : skip + take]
    root = _odata_root(request)
    body: dict = {"@odata.context": f"{root}/$metadata#{es.name}" + (f"({','.join(columns)})" if columns != es.columns else "")}
    if params.get("$count", "").lower() == "true":
        body["@odata.count"] = len(rows)
    body["value"] = [{c: r[c] for c in columns} for r in page]
    if take < wanted and skip + take < len(rows):
        forwarded = dict(params)
        if top is not None:
            forwarded["$top"] = str(top - take)
        body["@odata.nextLink"] = odata.next_link(f"{root}/{es.name}", forwarded, skip + take)
    return _odata_json(body)
