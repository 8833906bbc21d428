"""Thin routers: REST tables (JSON/CSV) and the OData feed, all from each round's latest release,
and the releases themselves (list; cut by the KL operator)."""

from __future__ import annotations

import csv
import io
from pathlib import Path as FilePath
from typing import Literal

from fastapi import APIRouter, HTTPException, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from fastapi.routing import APIRoute

from services.analytics import odata, service
from services.analytics.deps import KommuneFilter, LatestRelease, Operator, Page, Paging, Reader, Releases, RoundId, Settings, Uow, check_kommune
from services.analytics.domain.publication import INDICATOR_COLUMNS, RATE_COLUMNS
from services.analytics.schemas import (
    METHOD_PATH,
    CalibrationIn,
    CalibrationOut,
    IndicatorPage,
    ReleaseIn,
    ReleaseOut,
    ResponseRatePage,
    ResponseRates,
    RoundOut,
    page_model,
    row_model,
)
from shared.auth import Principal

API_DESCRIPTION = (
    "Borgerblik's published survey tables: indicators per question, municipality and breakdown, response rates "
    "and trends, as JSON, CSV or an OData v4 feed (/odata, for Power BI and other BI tools). Every figure comes "
    "from the round's latest release and is suppressed where a cell has few respondents. What each column means, "
    "which answers count in which base, what suppressed and caution mean and how the estimates are made: "
    f"[the method document]({METHOD_PATH}) (docs/analytics-method.md). Read with an OAuth2 bearer token, or, for a "
    "BI tool that refreshes unattended, with a BI key (POST /bi-keys) sent as Basic credentials: user name the key's "
    "id, password its secret."
)
TrendRow = row_model(
    "TrendRow", service.TREND_COLUMNS,
    "One indicator's change in a municipality (or nationally) since the previous round of the same questionnaire.",
)
TrendPage = page_model("TrendPage", TrendRow)

router = APIRouter(tags=["aggregates"])

QUESTION = Query(None, description="Only this question's rows (its id in the questionnaire, e.g. q13)")
LEVEL = Query(None, description='Only rows of this level of the dimension (e.g. a target group), or "total"')
CSV_RESPONSE = {200: {"content": {"text/csv": {"schema": {"type": "string"}}}, "description": "The page (json) or the rows (csv)"}}


def _csv_value(value):
    return "" if value is None else ("true" if value is True else "false" if value is False else value)


def _table(
    settings,
    rows: list[dict],
    columns: tuple[str, ...],
    paging: Page,
    round_id: str | None,
    filename: str,
    page_type: type,
    release: service.ReleaseInfo | None = None,
    **extra,
):
    """One page of ``rows``; ``release``: the release they are from, said on the page (JSON),
    on every row and in the headers (CSV). Without one the rows say it themselves (trends)."""
    limit = min(paging.limit or settings.max_page_size, settings.max_page_size)
    page = rows[paging.offset : paging.offset + limit]
    stamp = release.page_stamp() if release is not None else {}
    if paging.format == "csv":
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
    return page_type(
        round_id=round_id,
        **stamp,
        suppression_threshold=settings.suppression_threshold,
        caution_below=settings.caution_below,
        total=len(rows),
        offset=paging.offset,
        limit=limit,
        columns=list(columns),
        rows=page,
        **extra,
    )


@router.get("/rounds", response_model=list[RoundOut], summary="Rounds with published data, oldest first")
async def get_rounds(uow: Uow, principal: Reader) -> list[RoundOut]:
    return [RoundOut(round_id=r.round_id, questionnaire_id=r.questionnaire_id) for r in await service.list_rounds(uow)]


@router.get(
    "/rounds/{round_id}/response-rates",
    response_model=ResponseRates,
    summary="Answers and response rate per municipality and nationally; small cells suppressed",
)
async def get_response_rates(uow: Uow, releases: Releases, round_id: RoundId, principal: Reader) -> ResponseRates:
    return await service.response_rates(uow, releases, round_id, principal)


@router.get(
    "/rounds/{round_id}/response-rates/detail",
    response_model=ResponseRatePage,
    responses=CSV_RESPONSE,
    summary="Response rates per municipality x target group, dispatch arm, answer mode, language or follow-up arm, "
            "with margins",
)
async def get_response_rate_table(
    table: LatestRelease,
    settings: Settings,
    paging: Paging,
    dimension: Literal["maalgruppe", "arm", "mode", "language", "followup"] | None = Query(
        None, description="Only rows broken down by the target group (maalgruppe), the dispatch strategy (arm), the "
        "answer mode (mode: web, paper, phone), the language answered in (language) or the adaptive follow-up arm "
        "(followup: followup_extra, followup_control, none); a mode's or a language's response rate is the share of "
        "the invited who answered that way",
    ),
    level: str | None = LEVEL,
):
    release, round_id = table.release, table.release.info.round_id
    rows = service.select_rows(
        service.visible(release.publication.rate_rows, table.principal),
        {"dimension": dimension, "kommunekode": table.kommunekode, "level": level},
    )
    return _table(settings, rows, RATE_COLUMNS, paging, round_id, f"{round_id}-response-rates", ResponseRatePage, release.info)


@router.get(
    "/rounds/{round_id}/indicators",
    response_model=IndicatorPage,
    responses=CSV_RESPONSE,
    summary="Indicator tables (weighted with SE and 95 % CI, unweighted beside), suppressed",
    description=(
        "One row per question x dimension x municipality (or national) x level (or total). "
        "Suppressed cells have every figure null and suppressed=true; caution=true marks few answers. "
        "The rows are the round's latest release (release, phase, built_at); 404 before its first."
    ),
)
async def get_indicators(
    table: LatestRelease,
    settings: Settings,
    paging: Paging,
    question: str | None = QUESTION,
    dimension: Literal["maalgruppe", "gender", "age_band", "duration_band"] | None = Query(
        None, description="Only rows broken down by this dimension (target group, gender, age band, time on the benefit)"
    ),
    level: str | None = LEVEL,
):
    release, round_id = table.release, table.release.info.round_id
    rows = service.visible(release.publication.indicators(question, dimension, table.kommunekode), table.principal)
    if level is not None:
        rows = service.select_rows(rows, {"level": level})
    return _table(settings, rows, INDICATOR_COLUMNS, paging, round_id, f"{round_id}-indicators", IndicatorPage, release.info,
                  method=release.publication.method or None)


@router.get(
    "/trends", response_model=TrendPage, responses=CSV_RESPONSE, summary="Change since the previous round, with a significance flag"
)
async def get_trends(
    uow: Uow,
    settings: Settings,
    releases: Releases,
    principal: Reader,
    kommunekode: KommuneFilter,
    paging: Paging,
    questionnaire_id: str | None = Query(None, description="Only rounds of this questionnaire"),
    question: str | None = QUESTION,
    indicator: Literal["mean", "top2_share"] | None = Query(None, description="Only this indicator's trend rows"),
):
    rows = await service.trends(uow, releases, questionnaire_id)
    rows = service.select_rows(service.visible(rows, principal), {"question": question, "kommunekode": kommunekode, "indicator": indicator})
    return _table(settings, rows, service.TREND_COLUMNS, paging, None, "trends", TrendPage)


@router.get(
    "/rounds/{round_id}/releases",
    response_model=list[ReleaseOut],
    summary="The round's releases, oldest first; every table is served from the latest",
)
async def get_releases(uow: Uow, releases: Releases, round_id: RoundId, principal: Reader) -> list[ReleaseOut]:
    return [_release_out(i) for i in await releases.list(uow, round_id)]


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
async def post_release(releases: Releases, body: ReleaseIn, round_id: RoundId, principal: Operator) -> ReleaseOut:
    return _release_out(await service.cut_release(releases, round_id, body.phase, body.scope))


@router.get(
    "/rounds/{round_id}/calibration",
    response_model=CalibrationOut,
    summary="The round's estimation settings (calibration margins and bounds, lonely-stratum rule) and its latest release's report",
)
async def get_calibration(uow: Uow, releases: Releases, round_id: RoundId, principal: Reader) -> CalibrationOut:
    return CalibrationOut.model_validate(await service.round_method_view(uow, releases, round_id))


@router.put(
    "/rounds/{round_id}/calibration",
    response_model=CalibrationOut,
    summary="Set the round's calibration margins and bounds and its lonely-stratum rule (used from its next release)",
    description=(
        "Margins are lists of the frame's variables (maalgruppe, gender, age_band, duration_band), each raked to within "
        "every municipality; bounds limit g = calibrated weight / design weight. A municipality that cannot be raked "
        "keeps its design weights and is named in the release's calibration report. 422 names what is wrong."
    ),
)
async def put_calibration(
    uow: Uow, releases: Releases, body: CalibrationIn, round_id: RoundId, principal: Operator
) -> CalibrationOut:
    await service.set_round_method(uow, round_id, body.spec(), body.lonely_strata, principal.subject)
    return CalibrationOut.model_validate(await service.round_method_view(uow, releases, round_id))


# -- the method document ---------------------------------------------------------------------------

METHOD_FILE = FilePath(__file__).resolve().parents[2] / "docs" / "analytics-method.md"


@router.get(
    METHOD_PATH,
    response_class=PlainTextResponse,
    summary="The method document: estimators, bases, suppression, caution, releases (Markdown)",
    responses={200: {"content": {"text/markdown": {}}}},
)
async def get_method(principal: Reader) -> PlainTextResponse:
    return PlainTextResponse(METHOD_FILE.read_text(encoding="utf-8"), media_type="text/markdown; charset=utf-8")


# -- OData v4 ---------------------------------------------------------------------------------------

ODATA_HEADERS = {"OData-Version": "4.0"}


def _odata_error(error: odata.ODataError) -> JSONResponse:
    return JSONResponse(error.body(), status_code=error.status, headers=ODATA_HEADERS)


class ODataRoute(APIRoute):
    """Every refusal under /odata is an OData error body (``{"error": {"code", "message", "target"}}``),
    the access checks' 401/403 and the parameters' 422 included, so a client shows its message."""

    def get_route_handler(self):
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except odata.ODataError as exc:
                return _odata_error(exc)
            except HTTPException as exc:
                response = _odata_error(odata.ODataError(exc.status_code, str(exc.detail)))
                response.headers.update(exc.headers or {})
                return response
            except RequestValidationError as exc:
                first = exc.errors()[0] if exc.errors() else {}
                where = ".".join(str(x) for x in first.get("loc", ()))
                return _odata_error(odata.ODataError(400, f"{where}: {first.get('msg', 'invalid request')}", where or None))

        return route


odata_router = APIRouter(prefix="/odata", tags=["odata"], route_class=ODataRoute)


def _query_option(name: str, description: str) -> dict:
    return {"name": name, "in": "query", "required": False, "schema": {"type": "string"}, "description": description}


# The system query options the feed answers, read from the query string by odata.parse_query
# (documented here; OData clients write them).
_FILTER_OPTION = _query_option(
    "$filter", "A condition: eq ne gt ge lt le, and or not, in (..), parentheses, startswith contains endswith tolower toupper "
    "trim length, add sub mul div mod; null compares as OData says (e.g. mean gt 3 and kommunekode in ('101', '751'))",
)
ODATA_OPTIONS = [
    _FILTER_OPTION,
    _query_option("$orderby", "Properties to sort by, each asc (default) or desc, null lowest (e.g. mean desc,question)"),
    _query_option("$top", "At most this many rows (server pages of at most the page size follow @odata.nextLink)"),
    _query_option("$skip", "Rows to skip"),
    _query_option("$count", "true: the number of matching rows as @odata.count"),
    _query_option("$select", "Properties to return, comma-separated"),
    _query_option("$format", "json (the only format)"),
]


def _odata_json(body: dict) -> JSONResponse:
    return JSONResponse(body, media_type=odata.JSON_MEDIA_TYPE, headers=ODATA_HEADERS)


def _odata_root(request: Request) -> str:
    return str(request.url_for("odata_service_document")).rstrip("/")


def _entity_set(name: str) -> odata.EntitySet:
    es = odata.ENTITY_SETS.get(name)
    if es is None:
        raise odata.ODataError(404, f"no entity set {name!r} (there are: {', '.join(odata.ENTITY_SETS)})", name)
    return es


async def _entities(
    uow: Uow, releases: service.Releases, es: odata.EntitySet, flt: odata.Filter, principal: Principal
) -> list[dict]:
    """The set's rows the caller may see that pass ``flt``, in table order. The filter's top-level
    equalities on round, question, dimension and municipality narrow what is read (the
    publication's index) before each row is made an entity."""
    wanted = {k: v for k, v in flt.equalities.items() if isinstance(v, str)}
    if "kommunekode" in wanted:
        check_kommune(principal, wanted["kommunekode"])
    if es.name == "Trends":
        rows = await service.trends(uow, releases, wanted.get("questionnaire_id"))
        return [e for e in (odata.entity(es, r) for r in service.visible(rows, principal)) if flt(e)]
    rounds = await service.list_rounds(uow)
    if "round_id" in wanted:
        rounds = [r for r in rounds if r.round_id == wanted["round_id"]]
    out = []
    for release in await service.latest_releases(uow, releases, rounds):
        if es.name == "Indicators":
            published = release.publication.indicators(wanted.get("question"), wanted.get("dimension"), wanted.get("kommunekode"))
        else:
            published = release.publication.rate_rows
        stamp = release.info.stamp()
        out.extend(e for e in (odata.entity(es, r, stamp) for r in service.visible(published, principal)) if flt(e))
    return out


@odata_router.get("/", name="odata_service_document", summary="OData service document")
async def odata_service_document(request: Request, principal: Reader) -> JSONResponse:
    return _odata_json(
        {
            "@odata.context": f"{_odata_root(request)}/$metadata",
            "value": [{"name": es.name, "kind": "EntitySet", "url": es.name} for es in odata.ENTITY_SETS.values()],
        }
    )


@odata_router.get(
    "/$metadata",
    summary="OData CSDL: types, descriptions (Core.Description) and capabilities (Org.OData.Capabilities.V1)",
)
async def odata_metadata(principal: Reader) -> Response:
    return Response(odata.metadata_xml(), media_type="application/xml", headers=ODATA_HEADERS)


@odata_router.get(
    "/vocabularies/{namespace}.xml",
    summary="The OData vocabularies $metadata references (the terms it uses, as OASIS defines them)",
)
async def odata_vocabulary(
    principal: Reader, namespace: str = Path(description="Org.OData.Core.V1 or Org.OData.Capabilities.V1")
) -> Response:
    document = odata.VOCABULARIES.get(namespace)
    if document is None:
        raise odata.ODataError(404, f"no vocabulary {namespace!r} here (there are: {', '.join(odata.VOCABULARIES)})", namespace)
    return Response(document, media_type="application/xml", headers=ODATA_HEADERS)


@odata_router.get(
    "/{entity_set}/$count",
    response_class=PlainTextResponse,
    summary="The number of entities matching $filter (text/plain)",
    openapi_extra={"parameters": [_FILTER_OPTION]},
)
async def odata_count(
    request: Request,
    uow: Uow,
    releases: Releases,
    principal: Reader,
    entity_set: str = Path(description="Indicators, ResponseRates or Trends"),
) -> PlainTextResponse:
    es = _entity_set(entity_set)
    params = dict(request.query_params)
    odata.check_options(params)
    rows = await _entities(uow, releases, es, odata.parse_filter(params.get("$filter"), es.columns), principal)
    return PlainTextResponse(str(len(rows)), headers=ODATA_HEADERS)


@odata_router.get(
    "/{entity_set}",
    summary="An OData entity set, or one entity by key: Set('id'), Set(id='id') or Set(k1=..,k2=..)",
    description=(
        "$filter (eq ne gt ge lt le, and or not, in, parentheses, startswith contains endswith tolower toupper trim "
        "length, add sub mul div mod), $orderby (several keys, asc/desc, null lowest), $top, $skip, $count=true, "
        "$select; server-driven paging by @odata.nextLink. $expand, $search, $apply and other options: 501. "
        f"Columns, bases and flags: $metadata and the method document ({METHOD_PATH})."
    ),
    openapi_extra={"parameters": ODATA_OPTIONS},
)
async def odata_entity_set(
    request: Request,
    uow: Uow,
    settings: Settings,
    releases: Releases,
    principal: Reader,
    entity_set: str = Path(description="Indicators, ResponseRates or Trends, optionally with a key predicate"),
) -> JSONResponse:
    params = dict(request.query_params)
    root = _odata_root(request)
    name, paren, key_text = entity_set.partition("(")
    if paren:
        if not key_text.endswith(")"):
            raise odata.ODataError(400, f"a key predicate ends with ')': {entity_set!r}", entity_set)
        return await _odata_entity(uow, releases, _entity_set(name), key_text[:-1], params, root, principal)
    es = _entity_set(name)
    query = odata.parse_query(params, es)
    rows = odata.sort_rows(await _entities(uow, releases, es, query.filter, principal), query.orderby)

    page_size = settings.max_page_size
    skip, top = query.skip, query.top
    wanted = len(rows) - skip if top is None else top
    take = max(min(wanted, page_size), 0)
    page = rows[skip : skip + take]
    columns = query.select
    body: dict = {"@odata.context": f"{root}/$metadata#{es.name}" + (f"({','.join(columns)})" if columns != es.columns else "")}
    if query.count:
        body["@odata.count"] = len(rows)
    body["value"] = [{c: r[c] for c in columns} for r in page]
    if take < wanted and skip + take < len(rows):
        forwarded = dict(params)
        if top is not None:
            forwarded["$top"] = str(top - take)
        body["@odata.nextLink"] = odata.next_link(f"{root}/{es.name}", forwarded, skip + take)
    return _odata_json(body)


async def _odata_entity(
    uow: Uow, releases: service.Releases, es: odata.EntitySet, key_text: str, params: dict, root: str, principal: Principal
) -> JSONResponse:
    odata.check_options(params)
    for option in ("$filter", "$orderby", "$top", "$skip", "$count"):
        if option in params:
            raise odata.ODataError(400, f"{option} does not apply to a single entity", option)
    key = odata.parse_key(key_text, es)
    columns = odata.parse_select(params.get("$select"), es.columns)
    parts = key.split(odata.KEY_SEPARATOR)
    equalities = dict(zip(es.key_columns, parts)) if len(parts) == len(es.key_columns) else {}
    flt = odata.Filter(lambda row: row["id"] == key, equalities)  # the key's columns narrow what is read
    rows = await _entities(uow, releases, es, flt, principal)
    if not rows:
        raise odata.ODataError(404, f"no {es.entity_type} with key {key!r}", f"{es.name}({key_text})")
    selected = f"({','.join(columns)})" if columns != es.columns else ""
    return _odata_json({"@odata.context": f"{root}/$metadata#{es.name}{selected}/$entity", **{c: rows[0][c] for c in columns}})
