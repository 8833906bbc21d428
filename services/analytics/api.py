"""Thin routers: REST tables (JSON/CSV) and the OData feed, all from the cached publication."""

from __future__ import annotations

import csv
import io
from typing import Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from fastapi.responses import JSONResponse, Response

from services.analytics import odata, service
from services.analytics.domain.publication import DIMENSIONS, INDICATOR_COLUMNS, NATIONAL, RATE_COLUMNS, RATE_DIMENSIONS
from services.analytics.schemas import ResponseRates, RoundOut, TablePage
from shared.auth import Principal, ensure_kommune_access, require_scopes

router = APIRouter(tags=["aggregates"])
odata_router = APIRouter(prefix="/odata", tags=["odata"])
ROUND_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
reader = require_scopes("aggregates:read")
Format = Literal["json", "csv"]


def _cache(request: Request) -> service.PublicationCache:
    return request.app.state.publications


async def _publication(request: Request, round_id: str):
    async with request.app.state.runtime.uow() as uow:
        try:
            return await _cache(request).get(uow, round_id)
        except service.RoundNotFound:
            raise HTTPException(404, detail=f"no data for round {round_id}") from None


def _check_kommune(principal: Principal, kommunekode: str | None) -> None:
    if kommunekode and kommunekode != NATIONAL:
        ensure_kommune_access(principal, kommunekode)


def _table(request: Request, rows: list[dict], columns: tuple[str, ...], fmt: str, limit: int | None, offset: int, round_id: str | None, filename: str):
    settings = request.app.state.settings
    limit = min(limit or settings.max_page_size, settings.max_page_size)
    page = rows[offset : offset + limit]
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(columns)
        for row in page:
            writer.writerow(["" if row[c] is None else ("true" if row[c] is True else "false" if row[c] is False else row[c]) for c in columns])
        return Response(
            buffer.getvalue(),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{filename}.csv"', "X-Total-Count": str(len(rows))},
        )
    return TablePage(
        round_id=round_id,
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
        return await service.response_rates(uow, _cache(request), round_id, principal)


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
    async with request.app.state.runtime.uow() as uow:
        try:
            rate_rows = await _cache(request).rate_rows(uow, round_id)
        except service.RoundNotFound:
            raise HTTPException(404, detail=f"no data for round {round_id}") from None
    rows = service.select_rows(service.visible(rate_rows, principal), {"dimension": dimension, "kommunekode": kommunekode, "level": level})
    return _table(request, rows, RATE_COLUMNS, format, limit, offset, round_id, f"{round_id}-response-rates")


@router.get(
    "/rounds/{round_id}/indicators",
    response_model=TablePage,
    summary="Indicator tables (weighted with SE and 95 % CI, unweighted beside), suppressed",
    description=(
        "One row per question x dimension x municipality (or national) x level (or total). "
        "Suppressed cells have every figure null and suppressed=true; caution=true marks few answers."
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
    publication = await _publication(request, round_id)
    rows = service.visible(publication.indicators(question, dimension, kommunekode), principal)
    if level is not None:
        rows = service.select_rows(rows, {"level": level})
    return _table(request, rows, INDICATOR_COLUMNS, format, limit, offset, round_id, f"{round_id}-indicators")


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
        rows = await service.trends(uow, _cache(request), questionnaire_id)
    rows = service.select_rows(service.visible(rows, principal), {"question": question, "kommunekode": kommunekode, "indicator": indicator})
    return _table(request, rows, service.TREND_COLUMNS, format, limit, offset, None, "trends")


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
        cache = _cache(request)
        if es.name == "Trends":
            rows = await service.trends(uow, cache, conditions.get("questionnaire_id"))
        else:
            rounds = await service.list_rounds(uow)
            if isinstance(conditions.get("round_id"), str):
                rounds = [r for r in rounds if r.round_id == conditions["round_id"]]
            rows = []
            for info in rounds:
                publication = await cache.get_for(uow, info)
                rows.extend(publication.indicator_rows if es.name == "Indicators" else publication.rate_rows)
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
