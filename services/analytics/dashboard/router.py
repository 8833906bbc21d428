"""The dashboard's routes: server-rendered pages, chart images, slides, the round's deck and PDF."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from urllib.parse import urlencode

import httpx
from authlib.integrations.base_client import OAuthError
from authlib.common.errors import AuthlibBaseError
from joserfc.errors import JoseError
from fastapi import APIRouter, Form, HTTPException, Path as P, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates

from services.analytics import service
from services.analytics.dashboard import charts, comparison, csrf, data, freetext, oidc, queries, sessions, slides
from services.analytics.dashboard import texts as tx
from services.analytics.dashboard.auth import SCOPE, dev_login_enabled, failed_logins, fetch_token, safe_next
from services.analytics.dashboard.deps import Kommune, Reader, RoundId, Uow, Viewer, check_reader
from services.analytics.dashboard.present import alt_text, reading, representativeness_tables, table_rows
from services.analytics.domain.publication import DIMENSIONS, NATIONAL
from services.analytics.overview import service as round_overviews
from shared.auth import Principal

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=str(HERE / "templates"))
templates.env.globals.update(fmt_number=tx.fmt_number, fmt_percent=tx.fmt_percent, level_label=tx.level_label,
                             question_label=tx.question_label, municipality_name=tx.municipality_name)
templates.env.globals.update(csrf_token=csrf.token)  # every form's hidden csrftoken field (.csrf)

QUESTION = re.compile(r"^q\d{1,3}$")
CSP = "default-src 'none'; img-src 'self'; style-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
MEDIA = {"png": "image/png", "svg": "image/svg+xml",
         "pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation"}


# -- refusals: a page that says why and the way back ---------------------------------------------------

# The refusal's reason from its detail (the API's words), so that the raise sites stay plain
# HTTPExceptions: (pattern, key of the reason in texts.py).
REFUSAL_REASONS = (
    (re.compile(r"^not allowed to act for municipality (?P<kommune>\w+)"), "why_kommune"),
    (re.compile(r"^missing scope"), "why_scope"),
    (re.compile(r"^free texts of all municipalities"), "why_texts_all"),
    (re.compile(r"^round (?P<round>\S+) has no release yet"), "why_no_release"),
    (re.compile(r"^no data for round (?P<round>\S+)"), "why_no_round"),
    (re.compile(r"^no such question"), "why_question"),
    (re.compile(r"^round (?P<round>\S+) publishes response rates only"), "why_rates_only"),
    (re.compile(r"^no such chart"), "why_chart"),
    (re.compile(r"(comparison is per municipality|targets belong to a municipality)"), "why_per_kommune"),
    (re.compile(r"^municipal login is not configured"), "why_oidc_off"),
)


def refusal_page(request: Request, exc: HTTPException) -> Response:
    """403 and 404 of the dashboard as a page in its language: why, and the way back (the start
    page; after a 403 also the login, to change user). The status stays."""
    ctx = Ctx(request, None, request.query_params.get("lang", "da"))
    detail = exc.detail if isinstance(exc.detail, str) else ""
    why = ctx.t[f"why_{exc.status_code}"]
    for pattern, key in REFUSAL_REASONS:
        if found := pattern.search(detail):
            values = found.groupdict()
            if "kommune" in values:
                values["kommune"] = data.kommune_name(values["kommune"], ctx.lang)
            why = ctx.t[key].format(**values)
            break
    login_url = ctx.url("/dashboard/login", next=request.url.path) if exc.status_code == 403 else None
    return _render(ctx, "refusal.html", status_code=exc.status_code, heading=ctx.t[f"refused_{exc.status_code}"], why=why,
                   home_url=ctx.url("/dashboard/"), login_url=login_url)


class RefusalPages(APIRoute):
    """The dashboard's routes answer a 403 or 404 (from the route or a dependency) with
    :func:`refusal_page`; other answers, the login redirect among them, pass unchanged."""

    def get_route_handler(self):
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except HTTPException as exc:
                if exc.status_code not in (403, 404):
                    raise
                return refusal_page(request, exc)

        return handle


router = APIRouter(prefix="/dashboard", tags=["dashboard"], route_class=RefusalPages)


def _secure(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["Cache-Control"] = "private, no-store"
    return response


class Ctx:
    """One request's view: who, which round and municipality, language, the publication."""

    def __init__(self, request: Request, principal: Principal, lang: str, uow: Uow | None = None) -> None:
        self.request, self.principal, self.lang, self.uow = request, principal, tx.lang_of(lang), uow
        self.t = tx.texts(self.lang)
        self.round_id = self.kommune = None
        self.ix: data.Index | None = None
        self.release: service.ReleaseInfo | None = None
        self.rounds: list[service.RoundInfo] = []
        self.targets: dict[tuple[str, str], float] = {}
        self._rd: comparison.RoundData | None = None

    async def round_data(self) -> comparison.RoundData:
        """The cross-classified counts for the comparison group and the adjusted score, as of the
        release the page shows."""
        if self._rd is None:
            self._rd = await comparison.round_data(self.request.app.state.runtime.uow, self.round_id, self.release.version)
        return self._rd

    async def comparable(self) -> comparison.Comparable:
        return comparison.comparable(self.ix.compositions(await self.round_data()), self.kommune)

    def url(self, path: str, **params) -> str:
        query = {k: v for k, v in params.items() if v is not None}
        if self.lang != "da":
            query["lang"] = self.lang
        return path + (f"?{urlencode(query)}" if query else "")

    def base(self) -> str:
        return f"/dashboard/r/{self.round_id}/k/{self.kommune}"

    def kommune_choices(self) -> list[str]:
        return [k for k in self.ix.kommuner if self.principal.may_act_for(k)] if self.ix else []


async def _load(request: Request, uow: Uow, principal: Principal, lang: str, round_id: str, kommune: str, *,
                answers: bool = True) -> Ctx:
    """The request's view of the round's latest release. ``answers``: the page shows answers, so
    a release that publishes none (scope "rates", during fieldwork) is refused with why."""
    ctx = Ctx(request, principal, lang, uow)
    check_reader(principal, kommune)
    try:
        release = await request.app.state.releases.latest(uow, round_id)
    except service.NotReleased:
        raise HTTPException(404, detail=f"round {round_id} has no release yet: nothing of it is published") from None
    except service.RoundNotFound:
        raise HTTPException(404, detail=f"no data for round {round_id}") from None
    ctx.rounds = await service.list_rounds(uow)
    if kommune != NATIONAL:
        ctx.targets = await queries.targets_of(uow, kommune)
    if answers and not release.info.answers_published:
        raise HTTPException(404, detail=f"round {round_id} publishes response rates only until its results are released")
    ctx.round_id, ctx.kommune, ctx.ix = round_id, kommune, data.index_of(release.publication)
    ctx.release = release.info
    return ctx


async def _trend_rows(ctx: Ctx) -> tuple[list[dict], list[str]]:
    questionnaire_id = ctx.ix.publication.questionnaire_id
    rows = await service.trends(ctx.uow, ctx.request.app.state.releases, questionnaire_id)
    rows = service.visible(rows, ctx.principal)
    order = [r.round_id for r in ctx.rounds if r.questionnaire_id == questionnaire_id]
    upto = order[: order.index(ctx.round_id) + 1] if ctx.round_id in order else order
    return [r for r in rows if r["round_id"] in upto], upto


async def build_spec(ctx: Ctx, chart_id: str) -> data.ChartSpec:
    spec = await _build_spec(ctx, chart_id)
    spec.min_count, spec.caution_below = ctx.ix.publication.min_count, ctx.ix.publication.caution_below
    return spec


async def _build_spec(ctx: Ctx, chart_id: str) -> data.ChartSpec:
    m = data.CHART_PATTERN.match(chart_id)
    if not m:
        raise HTTPException(404, detail="no such chart")
    question = m.group("dq") or m.group("bq") or m.group("tq") or m.group("fq")
    if question and question not in ctx.ix.questions:
        raise HTTPException(404, detail="no such question")
    ix, k, lang = ctx.ix, ctx.kommune, ctx.lang
    if chart_id == "themes":
        return data.themes_chart(ix, k, lang)
    if chart_id == "questions":
        return data.questions_chart(ix, k, lang, ctx.targets)
    if m.group("dq"):
        return data.distribution_chart(ix, k, question, lang)
    if m.group("dim"):
        return data.breakdown_chart(ix, k, question, m.group("dim"), lang, ctx.targets)
    if m.group("tq"):
        rows, rounds = await _trend_rows(ctx)
        return data.trend_chart(rows, rounds, k, question, lang, ctx.targets)
    if k == NATIONAL:
        raise HTTPException(404, detail="the comparison is per municipality")
    rd, comp = await ctx.round_data(), await ctx.comparable()
    if chart_id == "compare":
        return data.compare_chart(ix, rd, k, comp, lang)
    return data.fair_chart(ix, rd, k, comp, question, lang)


def chart_view(ctx: Ctx, spec: data.ChartSpec) -> dict:
    header, rows = table_rows(spec, ctx.lang)
    base = f"{ctx.base()}/chart/{spec.chart_id}"
    return {
        "spec": spec, "header": header, "rows": rows, "alt": alt_text(spec, ctx.lang),
        "svg": ctx.url(f"{base}.svg"), "png": ctx.url(f"{base}.png"), "pptx": ctx.url(f"{base}.pptx"),
    }


def _render(ctx: Ctx, template: str, status_code: int = 200, **extra) -> Response:
    nav = []
    if ctx.round_id:
        b = ctx.base()
        nav = [("overview", ctx.url(b)), ("questions", ctx.url(f"{b}/q")), ("breakdowns", ctx.url(f"{b}/breakdowns")),
               ("trends", ctx.url(f"{b}/trends"))]
        if ctx.kommune != NATIONAL:
            nav += [("compare", ctx.url(f"{b}/compare")), ("fair", ctx.url(f"{b}/fair"))]
        if ctx.kommune != NATIONAL or ctx.principal.all_kommuner:
            nav.append(("texts", ctx.url(f"{b}/texts")))
        if ctx.kommune != NATIONAL:
            nav.append(("targets", ctx.url(f"{b}/targets")))
    other_lang = "en" if ctx.lang == "da" else "da"
    query = dict(ctx.request.query_params) | {"lang": other_lang}
    settings = ctx.request.app.state.settings
    context = {
        "request": ctx.request, "ctx": ctx, "t": ctx.t, "lang": ctx.lang, "nav": nav,
        "lang_url": ctx.request.url.path + "?" + urlencode(query), "other_lang": other_lang,
        "kommune_name": data.kommune_name(ctx.kommune, ctx.lang) if ctx.kommune else None,
        "min_count": settings.suppression_threshold, "caution_below": settings.caution_below, "subject": ctx.principal.subject if ctx.principal else None,
        **extra,
    }
    if ctx.ix:
        context["min_count"] = ctx.ix.publication.min_count
        context["caution_below"] = ctx.ix.publication.caution_below
    if ctx.release:
        context["release_label"] = tx.release_label(ctx.release.phase, ctx.release.release, ctx.release.built_at, ctx.lang)
    return _secure(templates.TemplateResponse(ctx.request, template, context, status_code=status_code))


# -- pages ---------------------------------------------------------------------------------------------


@router.get("/static/dashboard.css", include_in_schema=False)
async def stylesheet() -> Response:
    response = Response((HERE / "static" / "dashboard.css").read_text(encoding="utf-8"), media_type="text/css")
    response.headers["Cache-Control"] = "public, max-age=300"
    return response


@router.get("/login", include_in_schema=False)
async def login_page(request: Request, next: str | None = None, lang: str = "da", failed: bool = False,
                     ended: bool = False) -> Response:
    ctx = Ctx(request, None, lang)
    return _render(ctx, "login.html", next=safe_next(next), failed=failed, ended=ended, **_login_options(ctx, next))


def _login_options(ctx: Ctx, next: str | None) -> dict:
    cfg = oidc.settings()
    return {"enabled": dev_login_enabled(), "oidc_url": ctx.url("/dashboard/login/oidc", next=safe_next(next)) if cfg.enabled else None}


@router.post("/login", include_in_schema=False)
async def login(request: Request, client_id: str = Form(...), client_secret: str = Form(...), next: str = Form("/dashboard/"),
                lang: str = Form("da")) -> Response:
    ctx = Ctx(request, None, lang)
    if not dev_login_enabled():
        return _render(ctx, "login.html", status_code=403, next=safe_next(next), failed=False, **(_login_options(ctx, next) | {"enabled": False}))
    address = request.client.host if request.client else "unknown"
    if (wait := failed_logins(request.app).refused(client_id, address)) is not None:
        response = _render(ctx, "login.html", status_code=429, next=safe_next(next), slowed=True, **_login_options(ctx, next))
        response.headers["Retry-After"] = str(wait)
        return response
    got = await fetch_token(request, client_id, client_secret)
    principal = None
    if got:
        try:
            principal = await request.app.state.authenticator.verify(got[0])
        except HTTPException:
            principal = None
    if principal is None or SCOPE not in principal.scopes:
        failed_logins(request.app).failed(client_id, address)
        return _render(ctx, "login.html", status_code=401, next=safe_next(next), failed=True, **_login_options(ctx, next))
    # A new server-side session holds the verified Principal; the access token is dropped here.
    await sessions.begin(request, principal)
    return RedirectResponse(safe_next(next), status_code=303)


@router.get("/login/oidc", include_in_schema=False)
async def login_oidc(request: Request, next: str | None = None, lang: str = "da") -> Response:
    """Start the authorization-code flow at the broker (FK Adgangsstyring behind it)."""
    cfg = oidc.settings()
    if not cfg.enabled:
        raise HTTPException(404, detail="municipal login is not configured")
    oidc.open_flow(request)
    request.session["next"], request.session["lang"] = safe_next(next), tx.lang_of(lang)
    redirect_uri = cfg.redirect_uri or str(request.url_for("oidc_callback"))
    try:
        response = await oidc.client(request, cfg).authorize_redirect(request, redirect_uri, ui_locales=tx.lang_of(lang))
    except (httpx.HTTPError, ValueError, KeyError) as error:
        raise HTTPException(502, detail=f"the login broker does not answer: {type(error).__name__}") from None
    oidc.store_flow(request, response)
    return response


@router.get("/oidc/callback", name="oidc_callback", include_in_schema=False)
async def oidc_callback(request: Request) -> Response:
    """The broker's answer: code -> tokens (ID token checked: signature, issuer, audience, nonce),
    claims -> Principal, kept in a new server-side session."""
    cfg = oidc.settings()
    if not cfg.enabled:
        raise HTTPException(404, detail="municipal login is not configured")
    oidc.open_flow(request)
    next_url, lang = request.session.get("next", "/dashboard/"), request.session.get("lang", "da")
    ctx = Ctx(request, None, lang)
    try:
        token = await oidc.client(request, cfg).authorize_access_token(request)
        claims = dict(token["userinfo"])
    except (OAuthError, AuthlibBaseError, JoseError, KeyError, ValueError, TypeError, httpx.HTTPError):
        response = _render(ctx, "login.html", status_code=401, next=next_url, failed=True, **_login_options(ctx, next_url))
        oidc.clear_flow(response)
        return response
    principal = oidc.principal_from_claims(claims, cfg)
    if SCOPE not in principal.scopes:
        response = _render(ctx, "login.html", status_code=403, next=next_url, denied=True, **_login_options(ctx, next_url))
        oidc.clear_flow(response)
        return response
    # A page that continues to the one asked for: the browser arrived from the broker's site, and
    # the next navigation starts here.
    await sessions.begin(request, principal)
    response = _render(ctx, "logged_in.html", next_url=safe_next(next_url))
    oidc.clear_flow(response)
    return response


@router.post("/logout", include_in_schema=False)
async def logout(request: Request, everywhere: str = Form("")) -> Response:
    """End this browser's session (the form's CSRF token checked first, .csrf), or with
    ``everywhere`` every session of the same user."""
    await sessions.end(request, everywhere=bool(everywhere))
    return RedirectResponse("/dashboard/login", status_code=303)


@router.get("/", response_class=HTMLResponse, summary="Dashboard: rounds and municipalities the caller may see")
async def home(request: Request, uow: Uow, principal: Viewer, lang: str = "da") -> Response:
    ctx = Ctx(request, principal, lang, uow)
    ctx.rounds = await service.list_rounds(uow)
    choices = []
    for release in reversed(await service.latest_releases(uow, request.app.state.releases, ctx.rounds)):
        ix = data.index_of(release.publication)
        choices.append((release.info.round_id, [NATIONAL] + [k for k in ix.kommuner if principal.may_act_for(k)]))
    # KL's operator: every defined round's overview (services.analytics.overview).
    operator_rounds = await round_overviews.list_rounds(uow) if round_overviews.may_see(principal) else []
    own = sorted(principal.kommunekoder)
    if choices and not principal.all_kommuner and len(own) == 1:
        return RedirectResponse(ctx.url(f"/dashboard/r/{choices[0][0]}/k/{own[0]}"), status_code=303)
    return _render(ctx, "home.html", choices=choices, operator_rounds=operator_rounds)


def _question(ctx: Ctx, question: str | None) -> str:
    if question is None:
        return data.OVERALL if data.OVERALL in ctx.ix.questions else (ctx.ix.questions or [data.OVERALL])[0]
    if not QUESTION.match(question) or question not in ctx.ix.questions:
        raise HTTPException(404, detail="no such question")
    return question


async def _representativeness(ctx: Ctx) -> dict | None:
    """The municipality's and the country's representativeness as of the release shown
    (.representativeness): readings and tables, or None before the sample has reached analytics."""
    kommuner = [ctx.kommune, NATIONAL] if ctx.kommune != NATIONAL else [NATIONAL]
    found = await queries.representativeness_of(ctx.uow, ctx.round_id, ctx.release.version, kommuner, ctx.ix.publication.min_count,
                                                names_municipalities=ctx.principal.all_kommuner,
                                                published={k: ctx.ix.published_respondents(k) for k in kommuner})
    if not found:
        return None
    names = [data.kommune_name(f.kommune, ctx.lang) for f in found]
    return {"names": names, "readings": [(name, reading(f, ctx.lang)) for name, f in zip(names, found)],
            "tables": representativeness_tables(found, ctx.lang)}


@router.get("/r/{round_id}/k/{kommune}", response_class=HTMLResponse, summary="Dashboard page: overview of a round for a municipality (or national)")
async def overview(request: Request, round_id: RoundId, kommune: Kommune, principal: Reader, uow: Uow, lang: str = "da") -> Response:
    ctx = await _load(request, uow, principal, lang, round_id, kommune, answers=False)
    ix = ctx.ix
    rates = [(data.kommune_name(k, ctx.lang), ix.rate(k)) for k in ([kommune, NATIONAL] if kommune != NATIONAL else [NATIONAL])]
    rep = await _representativeness(ctx)
    if not ctx.release.answers_published:
        return _render(ctx, "overview.html", rates=rates, rep=rep, satisfaction=[], target=None, charts=[], rates_only=True)
    satisfaction = [(data.kommune_name(k, ctx.lang), data.Point.of(ix.total(data.OVERALL, k), "mean"),
                     data.Point.of(ix.total(data.OVERALL, k), "top2_share"))
                    for k in ([kommune, NATIONAL] if kommune != NATIONAL else [NATIONAL])]
    target = ctx.targets.get((data.OVERALL, "mean"))
    return _render(ctx, "overview.html", rates=rates, rep=rep, satisfaction=satisfaction, target=target,
                   charts=[chart_view(ctx, await build_spec(ctx, "themes")), chart_view(ctx, await build_spec(ctx, "questions"))])


@router.get("/r/{round_id}/k/{kommune}/q", response_class=HTMLResponse, summary="Dashboard page: the questions")
async def question_index(request: Request, round_id: RoundId, kommune: Kommune, principal: Reader, uow: Uow, lang: str = "da") -> Response:
    ctx = await _load(request, uow, principal, lang, round_id, kommune)
    items = [(q, tx.question_text(q, ctx.lang), ctx.url(f"{ctx.base()}/q/{q}")) for q in ctx.ix.questions]
    return _render(ctx, "questions.html", items=items, charts=[chart_view(ctx, await build_spec(ctx, "questions"))])


@router.get("/r/{round_id}/k/{kommune}/q/{question}", response_class=HTMLResponse, summary="Dashboard page: one question's answer distribution")
async def question_page(request: Request, round_id: RoundId, kommune: Kommune, principal: Reader, uow: Uow, question: str = P(pattern=r"^q\d{1,3}$"),
                        lang: str = "da") -> Response:
    ctx = await _load(request, uow, principal, lang, round_id, kommune)
    question = _question(ctx, question)
    summary = [(data.kommune_name(k, ctx.lang), data.Point.of(ctx.ix.total(question, k), "mean"),
                data.Point.of(ctx.ix.total(question, k), "top2_share"), ctx.ix.total(question, k))
               for k in ([kommune, NATIONAL] if kommune != NATIONAL else [NATIONAL])]
    return _render(ctx, "question.html", question=question, text=tx.question_text(question, ctx.lang), summary=summary,
                   charts=[chart_view(ctx, await build_spec(ctx, f"dist-{question}"))])


@router.get("/r/{round_id}/k/{kommune}/breakdowns", response_class=HTMLResponse, summary="Dashboard page: by target group, gender, age band, duration band")
async def breakdowns(request: Request, round_id: RoundId, kommune: Kommune, principal: Reader, uow: Uow, question: str | None = None,
                     lang: str = "da") -> Response:
    ctx = await _load(request, uow, principal, lang, round_id, kommune)
    question = _question(ctx, question)
    views = [chart_view(ctx, await build_spec(ctx, f"bd-{dim}-{question}")) for dim in DIMENSIONS]
    return _render(ctx, "breakdowns.html", question=question, text=tx.question_text(question, ctx.lang), charts=views,
                   action=f"{ctx.base()}/breakdowns")


@router.get("/r/{round_id}/k/{kommune}/trends", response_class=HTMLResponse, summary="Dashboard page: development over rounds, with targets")
async def trends(request: Request, round_id: RoundId, kommune: Kommune, principal: Reader, uow: Uow, question: str | None = None,
                 lang: str = "da") -> Response:
    ctx = await _load(request, uow, principal, lang, round_id, kommune)
    question = _question(ctx, question)
    rows, _ = await _trend_rows(ctx)
    changes = [r for r in rows if r["question"] == question and r["indicator"] == "mean" and r["round_id"] == round_id
               and r["kommunekode"] in (kommune, NATIONAL)]
    return _render(ctx, "trends.html", question=question, text=tx.question_text(question, ctx.lang), changes=changes,
                   charts=[chart_view(ctx, await build_spec(ctx, f"trend-{question}"))], action=f"{ctx.base()}/trends")


@router.get("/r/{round_id}/k/{kommune}/fair", response_class=HTMLResponse, summary="Dashboard page: raw and composition-adjusted score")
async def fair(request: Request, round_id: RoundId, kommune: Kommune, principal: Reader, uow: Uow, question: str | None = None,
               lang: str = "da") -> Response:
    ctx = await _load(request, uow, principal, lang, round_id, kommune)
    if kommune == NATIONAL:
        raise HTTPException(404, detail="the fair comparison is per municipality")
    question = _question(ctx, question)
    rd, comp = await ctx.round_data(), await ctx.comparable()
    raw = data.Point.of(ctx.ix.total(question, kommune), "mean")
    adjusted, expected = data.adjusted_point(ctx.ix, rd, kommune, question)
    group = data.group_point(ctx.ix, rd, question, comp.kommuner if comp.enough else [])
    national = data.Point.of(ctx.ix.total(question, NATIONAL), "mean")
    model = comparison.adjustment(rd, question)
    effects = []
    if model is not None:
        for dim in DIMENSIONS:
            effects.append((dim, model.reference[dim], None))
            effects += [(dim, lvl, float(model.coefficients[1 + i])) for i, (d, lvl) in enumerate(model.columns) if d == dim]
    return _render(ctx, "fair.html", question=question, text=tx.question_text(question, ctx.lang), raw=raw, adjusted=adjusted,
                   expected=None if adjusted.value is None else expected, group=group, group_label=data.group_name(comp, ctx.lang),
                   national=national, effects=effects, model_national=None if model is None else model.national,
                   charts=[chart_view(ctx, await build_spec(ctx, f"fair-{question}"))], action=f"{ctx.base()}/fair",
                   compare_url=ctx.url(f"{ctx.base()}/compare"))


@router.get("/r/{round_id}/k/{kommune}/compare", response_class=HTMLResponse,
            summary="Dashboard page: the municipality against comparable municipalities and the country")
async def compare(request: Request, round_id: RoundId, kommune: Kommune, principal: Reader, uow: Uow, lang: str = "da") -> Response:
    ctx = await _load(request, uow, principal, lang, round_id, kommune)
    if kommune == NATIONAL:
        raise HTTPException(404, detail="the comparison is per municipality")
    rd, comp = await ctx.round_data(), await ctx.comparable()
    compositions = ctx.ix.compositions(rd)
    cfg = comparison.config()
    mix = []  # (variable, level, own share, group's average share)
    own = compositions.get(kommune, {})
    for dim in DIMENSIONS:
        levels = sorted({lvl for k in [kommune, *comp.kommuner] for lvl in compositions.get(k, {}).get(dim, {})}, key=data._natural)
        for lvl in levels:
            group_shares = [compositions.get(k, {}).get(dim, {}).get(lvl, 0.0) for k in comp.kommuner]
            mix.append((dim, lvl, own.get(dim, {}).get(lvl, 0.0), sum(group_shares) / len(group_shares) if group_shares else None))
    return _render(ctx, "compare.html", comp=comp, description=cfg.get("description", {}).get(ctx.lang, ""), mix=mix,
                   group_label=data.group_name(comp, ctx.lang), charts=[chart_view(ctx, await build_spec(ctx, "compare"))])


@router.get("/r/{round_id}/k/{kommune}/texts", response_class=HTMLResponse,
            summary="Dashboard page: free-text answers (scrubbed), only for at least the minimum count")
async def texts_page(request: Request, round_id: RoundId, kommune: Kommune, principal: Reader, uow: Uow, question: str | None = None,
                     page: int = 1, lang: str = "da") -> Response:
    if kommune == NATIONAL and not principal.all_kommuner:
        raise HTTPException(403, detail="free texts of all municipalities are for KL only")
    ctx = await _load(request, uow, principal, lang, round_id, kommune)
    found = await freetext.load(uow, round_id, kommune, ctx.ix.publication.min_count, ctx.release.version)
    if question is not None and question not in found:
        raise HTTPException(404, detail="no such question")
    question = question or next(iter(found), None)
    current = found.get(question)
    page = max(1, page)
    pages = max(1, -(-len(current.texts) // freetext.PAGE_SIZE)) if current else 1
    page = min(page, pages)
    shown = current.texts[(page - 1) * freetext.PAGE_SIZE: page * freetext.PAGE_SIZE] if current else []
    link = lambda p: ctx.url(f"{ctx.base()}/texts", question=question, page=p)  # noqa: E731
    return _render(ctx, "texts.html", found=found, question=question, current=current, shown=shown, page=page, pages=pages,
                   first_number=(page - 1) * freetext.PAGE_SIZE + 1, label=freetext.label,
                   previous_url=link(page - 1) if page > 1 else None, next_url=link(page + 1) if page < pages else None,
                   action=f"{ctx.base()}/texts")


@router.get("/r/{round_id}/k/{kommune}/targets", response_class=HTMLResponse, summary="Dashboard page: the municipality's targets")
async def targets_page(request: Request, round_id: RoundId, kommune: Kommune, principal: Reader, uow: Uow, lang: str = "da") -> Response:
    ctx = await _load(request, uow, principal, lang, round_id, kommune)
    if kommune == NATIONAL:
        raise HTTPException(404, detail="targets belong to a municipality")
    return _render(ctx, "targets.html", targets=sorted(ctx.targets.items(), key=lambda kv: data._natural(kv[0][0])),
                   action=f"{ctx.base()}/targets")


@router.post("/r/{round_id}/k/{kommune}/targets", status_code=303, response_class=RedirectResponse,
             summary="Dashboard: set or delete a target of the municipality (form post)",
             description="Form fields (application/x-www-form-urlencoded): question, indicator (mean | top2_share), "
             "value (decimal comma or point), delete (any value deletes), lang. 400 on a bad field.")
async def set_target(request: Request, round_id: RoundId, kommune: Kommune, principal: Reader, uow: Uow) -> Response:
    """The form is read here, after the access check (and after its CSRF token, .csrf)."""
    form = await request.form()
    field = lambda name, default="": str(form.get(name) or default)[:64]  # noqa: E731
    question, indicator, value, delete = field("question"), field("indicator", "mean"), field("value"), field("delete")
    ctx = await _load(request, uow, principal, field("lang", "da"), round_id, kommune)
    if kommune == NATIONAL:
        raise HTTPException(404, detail="targets belong to a municipality")
    if question not in ctx.ix.questions or indicator not in queries.INDICATOR_RANGES:
        raise HTTPException(400, detail="unknown question or indicator")
    if delete:
        await queries.delete_target(uow, kommune, question, indicator)
    else:
        try:
            number = queries.target_value(indicator, value)
        except queries.BadTarget as error:
            raise HTTPException(400, detail=str(error)) from None
        await queries.set_target(uow, kommune, question, indicator, number, principal.subject)
    return RedirectResponse(ctx.url(f"{ctx.base()}/targets"), status_code=303)


# -- downloads -----------------------------------------------------------------------------------------


@router.get("/r/{round_id}/k/{kommune}/chart/{chart_id}.{ext}", response_class=Response,
            summary="Dashboard: one chart as PNG, SVG or a PowerPoint slide with a native chart",
            responses={200: {"content": {MEDIA["png"]: {}, MEDIA["svg"]: {}, MEDIA["pptx"]: {}}}})
async def chart_file(request: Request, round_id: RoundId, kommune: Kommune, principal: Reader, uow: Uow, chart_id: str = P(max_length=64),
                     ext: str = P(pattern=r"^(png|svg|pptx)$"), lang: str = "da") -> Response:
    ctx = await _load(request, uow, principal, lang, round_id, kommune)
    spec = await build_spec(ctx, chart_id)
    if ext == "pptx":
        body = await asyncio.to_thread(slides.single_slide, spec, ctx.lang)
    else:
        body = await asyncio.to_thread(charts.render, spec, ctx.lang, ext)
    response = Response(body, media_type=MEDIA[ext])
    if ext != "svg":
        response.headers["Content-Disposition"] = f'attachment; filename="{round_id}-{kommune}-{chart_id}.{ext}"'
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cache-Control"] = "private, no-store"
    return response


async def report_specs(ctx: Ctx, question: str = data.OVERALL) -> list[data.ChartSpec]:
    question = _question(ctx, None) if question not in ctx.ix.questions else question
    ids = ["themes", "questions", f"dist-{question}"] + [f"bd-{d}-{question}" for d in DIMENSIONS] + [f"trend-{question}"]
    if ctx.kommune != NATIONAL:
        ids += ["compare", f"fair-{question}"]
    return [await build_spec(ctx, i) for i in ids]


def _deck(ctx: Ctx, specs: list[data.ChartSpec]) -> bytes:
    deck = slides.new_deck()
    slides.title_slide(deck, f"{ctx.t['app']}: {ctx.t['round'].lower()} {ctx.round_id}", data.kommune_name(ctx.kommune, ctx.lang))
    for spec in specs:
        slides.add_chart_slide(deck, spec, ctx.lang)
    return slides.to_bytes(deck)


@router.get("/r/{round_id}/k/{kommune}/report.{ext}", response_class=Response,
            summary="Dashboard: the whole round as a PowerPoint deck or a PDF",
            responses={200: {"content": {MEDIA["pptx"]: {}, "application/pdf": {}}}})
async def report(request: Request, round_id: RoundId, kommune: Kommune, principal: Reader, uow: Uow, ext: str = P(pattern=r"^(pptx|pdf)$"),
                 lang: str = "da") -> Response:
    ctx = await _load(request, uow, principal, lang, round_id, kommune)
    specs = await report_specs(ctx)
    title = f"{ctx.t['app']}: {ctx.t['round'].lower()} {round_id}, {data.kommune_name(kommune, ctx.lang)}"
    if ext == "pptx":
        body, media = await asyncio.to_thread(_deck, ctx, specs), MEDIA["pptx"]
    else:
        body, media = await asyncio.to_thread(charts.pdf_report, title, specs, ctx.lang), "application/pdf"
    return Response(body, media_type=media, headers={"Content-Disposition": f'attachment; filename="{round_id}-{kommune}.{ext}"',
                                                     "Cache-Control": "private, no-store"})
