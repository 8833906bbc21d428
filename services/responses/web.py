"""The citizen's questionnaire as server-rendered pages (no JavaScript needed).

Routes (``?lang=en`` for English on every page):
  GET  /s/{token}             start page (fixes the questionnaire version on first visit)
  GET  /s/{token}/side/{n}    theme n of the questionnaire
  POST /s/{token}/side/{n}    save the page, then next / back / save-for-later / send
  GET  /s/{token}/gemt        "your answers are saved"
  GET  /s/{token}/tak         confirmation after sending
  GET|POST /s/{token}/afmeld  "I do not wish to take part" (stops reminders)
  GET  /s/{token}/afmeldt     confirmation of the opt-out
  GET  /tilgaengelighed       accessibility statement

After the round's fieldwork ends every page of a link, and every POST, answers with the closed
page (410); what the citizen saved stays stored.

The token is a credential: it is never logged, and pages carry Referrer-Policy: no-referrer.
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from services.responses import service
from services.responses.domain import Questionnaire, is_visible, render_question_text, scrub_free_text, validate_answers
from services.responses.formstore import FormStore
from services.responses.protection import CSRF_FIELD, client_ip, csrf_token_for, csrf_valid, is_tls, set_csrf_cookie
from services.responses.texts import TEXTS, long_date

router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=Path(__file__).parent / "templates")
# Templates ship with the code: no stat() of every template file on every render.
templates.env.auto_reload = False
TOKEN_FORMAT = re.compile(r"^[A-Za-z0-9_-]{20,100}$")
ACTIONS = {"next", "back", "save", "submit"}
DANISH_TIME = ZoneInfo("Europe/Copenhagen")


class TooManyGuesses(Exception):
    """An unknown link after the address's (or everyone's) budget of unknown links is spent;
    args[0] is the Retry-After in seconds."""


def _lang(request: Request) -> str:
    return "en" if request.query_params.get("lang") == "en" else "da"


def _query(lang: str) -> str:
    return "?lang=en" if lang == "en" else ""


def render(request: Request, template: str, context: dict, status_code: int = 200) -> HTMLResponse:
    lang = _lang(request)
    csrf_token, new = csrf_token_for(request)
    other = "da" if lang == "en" else "en"
    response = templates.TemplateResponse(
        request,
        template,
        {
            "lang": lang,
            "t": TEXTS[lang],
            "q": _query(lang),
            "switch_url": request.url.path + _query(other),
            "csrf_token": csrf_token,
            **context,
        },
        status_code=status_code,
    )
    if new:
        set_csrf_cookie(response, csrf_token, secure=is_tls(request.scope))
    return response


def message(request: Request, key: str, status_code: int, link: tuple[str, str] | None = None, extra: list[str] = ()) -> HTMLResponse:
    t = TEXTS[_lang(request)]
    return render(
        request,
        "message.html",
        {
            "heading": t[f"{key}_title"],
            "paragraphs": [t[f"{key}_body"], *extra],
            "link_url": link[0] if link else None,
            "link_text": link[1] if link else None,
        },
        status_code,
    )


def link_problem(request: Request, exc: Exception) -> HTMLResponse:
    """The clear page for an unknown, used or expired link, with the matching status; for a
    link dispatch issued that this service has not learnt yet, "being prepared" (503)."""
    if isinstance(exc, service.UnknownLink):
        settings = request.app.state.settings
        if service.link_pending(settings, request.path_params.get("token", "")):
            response = message(request, "pending", 503)
            response.headers["Retry-After"] = str(settings.link_pending_retry_seconds)
            return response
        if (wait := request.app.state.limiter.miss(client_ip(request))) is not None:
            return too_many(request, TooManyGuesses(wait))
        return message(request, "unknown", 404)
    if isinstance(exc, service.FieldworkEnded):
        return closed(request, exc)
    if isinstance(exc, service.LinkExpired):
        return message(request, "expired", 410)
    if isinstance(exc, service.LinkUsed) and exc.status == "opted_out":
        return message(request, "optedout", 409)
    return message(request, "used", 409)


def closed(request: Request, exc: service.FieldworkEnded) -> HTMLResponse:
    """The round's fieldwork is over: the same page for opening the link and for anything sent
    (410: the survey is gone for good), saying that saved answers are kept."""
    lang = _lang(request)
    t = TEXTS[lang]
    extra = []
    if exc.ended_at is not None:
        last_day = (exc.ended_at - timedelta(microseconds=1)).astimezone(DANISH_TIME).date()
        extra.append(t["closed_last_day"].format(date=long_date(last_day, lang)))
    return message(request, "closed", 410, extra=[*extra, t["closed_draft"], t["closed_thanks"]])


def _guard(request: Request, token: str) -> None:
    """A malformed token is an unknown link (and a miss) without a lookup. No budget is checked
    before the lookup: a valid link is served however much its address guessed (protection.py)."""
    if not TOKEN_FORMAT.match(token):
        raise service.UnknownLink()


def _uow(request: Request):
    return request.app.state.runtime.uow()


def _store(request: Request) -> FormStore:
    """The citizen's hot path: page views and the final submit (see formstore.py)."""
    return request.app.state.form_store


def _base(token: str) -> str:
    return f"/s/{token}"


# --- start ------------------------------------------------------------------------------------


@router.get("/s/{token}")
async def start(request: Request, token: str) -> Response:
    try:
        _guard(request, token)
        respondent, questionnaire = await _store(request).open_survey(token)
    except (service.UnknownLink, service.LinkUsed, service.LinkExpired) as exc:
        return link_problem(request, exc)
    resume = min(max(respondent.last_page + 1, 1), len(questionnaire.themes)) if respondent.draft or respondent.last_page else 1
    return render(request, "start.html", {"questionnaire": questionnaire, "base": _base(token), "resume_page": resume})


# --- one theme per page -----------------------------------------------------------------------


def _page_items(questionnaire: Questionnaire, theme_index: int, values: dict, errors: dict[str, str], lang: str) -> list[dict]:
    """The visible questions of a page, with piped text, options and the error for each."""
    theme = questionnaire.themes[theme_index]
    # Visibility and piping look at answers that validated; raw posted values may be invalid.
    answers = {k: v for k, v in values.items() if isinstance(v, str)}
    items = []
    for question in theme.questions:
        if not is_visible(questionnaire, question, answers):
            continue
        scale = questionnaire.scale_for(question.id)
        items.append(
            {
                "question": question,
                "text": render_question_text(questionnaire, question.id, answers, lang),  # type: ignore[arg-type]
                "help": question.help.get(lang) if question.help else None,  # type: ignore[arg-type]
                "limit": TEXTS[lang]["max_chars"].format(n=f"{question.text_limit:,}".replace(",", "." if lang == "da" else ",")),
                "options": [(o.value, o.label.get(lang)) for o in scale.options] if scale else None,  # type: ignore[arg-type]
                "value": values.get(question.id),
                "error": errors.get(question.id),
            }
        )
    return items


def _render_page(
    request: Request, token: str, questionnaire: Questionnaire, n: int, values: dict, result=None, followup=False
) -> HTMLResponse:
    lang = _lang(request)
    theme = questionnaire.themes[n - 1]
    theme_questions = {q.id for q in theme.questions}
    page_errors = [e for e in (result.errors if result else ()) if e.question_id in theme_questions]
    errors = {e.question_id: e.message.get(lang) for e in page_errors}  # type: ignore[arg-type]
    items = _page_items(questionnaire, n - 1, values, errors, lang)
    summary = [
        {"anchor": f"{item['question'].id}-1" if item["options"] else item["question"].id, "message": item["error"]}
        for item in items
        if item["error"]
    ]
    return render(
        request,
        "page.html",
        {
            "questionnaire": questionnaire,
            "theme": theme,
            "n": n,
            "last": n == len(questionnaire.themes),
            "progress": TEXTS[lang]["page_of"].format(n=n, total=len(questionnaire.themes)),
            "items": items,
            "shown": ",".join(item["question"].id for item in items),
            "errors": summary,
            "followup": followup,
            "base": _base(token),
        },
        400 if summary else 200,
    )


@router.get("/s/{token}/side/{n}")
async def page(request: Request, token: str, n: int) -> Response:
    try:
        _guard(request, token)
        respondent, questionnaire = await _store(request).open_survey(token)
    except (service.UnknownLink, service.LinkUsed, service.LinkExpired) as exc:
        return link_problem(request, exc)
    if not 1 <= n <= len(questionnaire.themes):
        return RedirectResponse(f"{_base(token)}/side/1{_query(_lang(request))}", status_code=303)
    return _render_page(request, token, questionnaire, n, dict(respondent.draft), followup=request.query_params.get("ny") == "1")


@router.post("/s/{token}/side/{n}")
async def save_page(request: Request, token: str, n: int) -> Response:
    settings = request.app.state.settings
    lang = _lang(request)
    q = _query(lang)
    form = await request.form()
    if not csrf_valid(request, form.get(CSRF_FIELD)):  # type: ignore[arg-type]
        return message(request, "csrf", 403, link=(f"{_base(token)}/side/{n}{q}", TEXTS[lang]["csrf_back"]))
    try:
        _guard(request, token)
    except service.UnknownLink as exc:
        return link_problem(request, exc)
    return await _save_page(request, settings, form, token, n, lang, q)


async def _save_page(request: Request, settings, form, token: str, n: int, lang: str, q: str) -> Response:
    try:
        respondent, questionnaire = await _store(request).open_survey(token)
    except service.LinkUsed as exc:
        if exc.status == "submitted" and form.get("action") == "submit":
            # A double click or a second tab: the answers are in, so show the receipt.
            return RedirectResponse(f"{_base(token)}/tak{q}", status_code=303)
        return link_problem(request, exc)
    except (service.UnknownLink, service.LinkExpired) as exc:
        return link_problem(request, exc)
    if not 1 <= n <= len(questionnaire.themes):
        return RedirectResponse(f"{_base(token)}/side/1{q}", status_code=303)

    theme = questionnaire.themes[n - 1]
    on_page = {question.id for question in theme.questions}
    shown = [qid for qid in str(form.get("shown", "")).split(",") if qid in on_page]
    posted = {qid: str(form.get(qid)) for qid in shown if form.get(qid) is not None}
    merged = service.merge_page(respondent.draft, shown, posted)
    action = str(form.get("action", "next"))
    action = action if action in ACTIONS else "next"
    last = n == len(questionnaire.themes)

    # Validated here first (pure, no database): invalid input goes straight back to the citizen.
    result = validate_answers(questionnaire, merged, partial=True)
    if not result.ok:
        return _render_page(request, token, questionnaire, n, merged, result)

    # A follow-up question on this page that the answers just made visible (e.g. q14 after q13)
    # is shown before moving on; without JavaScript that needs one more round trip.
    visible_now = [
        question.id for question in theme.questions if is_visible(questionnaire, question, result.accepted)
    ]
    new_followup = next((qid for qid in visible_now if qid not in shown), None) if action in ("next", "submit") else None
    sending = action == "submit" and last and new_followup is None

    try:
        if sending:
            # Validated above against the citizen's questionnaire version; scrubbed before it is
            # stored or published; link spent, answers stored and event written in one statement.
            await _store(request).submit(token, respondent, questionnaire, scrub_free_text(questionnaire, result.accepted))
            return RedirectResponse(f"{_base(token)}/tak{q}", status_code=303)
        async with _uow(request) as uow:
            await service.save_draft(uow, settings, token, merged, n, respondent=respondent)
    except service.LinkUsed as exc:
        if sending and exc.status == "submitted":
            return RedirectResponse(f"{_base(token)}/tak{q}", status_code=303)
        return link_problem(request, exc)
    except (service.UnknownLink, service.LinkExpired) as exc:
        return link_problem(request, exc)
    except service.InvalidAnswers as exc:
        return _render_page(request, token, questionnaire, n, merged, exc.result)
    if new_followup is not None:
        sep = "&" if q else "?"
        return RedirectResponse(f"{_base(token)}/side/{n}{q}{sep}ny=1#{new_followup}", status_code=303)
    if action == "save":
        return RedirectResponse(f"{_base(token)}/gemt{q}", status_code=303)
    if action == "back":
        return RedirectResponse(f"{_base(token)}/side/{max(1, n - 1)}{q}", status_code=303)
    return RedirectResponse(f"{_base(token)}/side/{min(n + 1, len(questionnaire.themes))}{q}", status_code=303)


# --- receipts, opt-out ------------------------------------------------------------------------


async def _status(request: Request, token: str):
    _guard(request, token)
    return await _store(request).find(token)


@router.get("/s/{token}/gemt")
async def saved(request: Request, token: str) -> Response:
    try:
        _guard(request, token)
        async with _uow(request) as uow:
            respondent = await service.open_link(uow, token)
    except (service.UnknownLink, service.LinkUsed, service.LinkExpired) as exc:
        return link_problem(request, exc)
    resume = respondent.last_page + 1
    t = TEXTS[_lang(request)]
    return message(request, "saved", 200, link=(f"{_base(token)}/side/{resume}{_query(_lang(request))}", t["saved_continue"]))


async def _final_page(request: Request, token: str, status: str, page: str, **kwargs) -> Response:
    """The page after a link is spent; anyone else who opens it is sent back to the start."""
    try:
        respondent = await _status(request, token)
    except service.UnknownLink as exc:
        return link_problem(request, exc)
    if respondent.status != status:
        return RedirectResponse(f"{_base(token)}{_query(_lang(request))}", status_code=303)
    return message(request, page, 200, **kwargs)


@router.get("/s/{token}/tak")
async def thanks(request: Request, token: str) -> Response:
    return await _final_page(request, token, "submitted", "thanks", extra=[TEXTS[_lang(request)]["thanks_close"]])


@router.get("/s/{token}/afmeld")
async def opt_out_form(request: Request, token: str) -> Response:
    try:
        _guard(request, token)
        async with _uow(request) as uow:
            await service.open_link(uow, token)
    except (service.UnknownLink, service.LinkUsed, service.LinkExpired) as exc:
        return link_problem(request, exc)
    return render(request, "optout.html", {"base": _base(token)})


@router.post("/s/{token}/afmeld")
async def opt_out(request: Request, token: str) -> Response:
    lang = _lang(request)
    form = await request.form()
    if not csrf_valid(request, form.get(CSRF_FIELD)):  # type: ignore[arg-type]
        return message(request, "csrf", 403, link=(f"{_base(token)}/afmeld{_query(lang)}", TEXTS[lang]["csrf_back"]))
    try:
        _guard(request, token)
        async with _uow(request) as uow:
            await service.opt_out(uow, token)
    except service.LinkUsed as exc:
        if exc.status != "opted_out":
            return link_problem(request, exc)
    except (service.UnknownLink, service.LinkExpired) as exc:
        return link_problem(request, exc)
    return RedirectResponse(f"{_base(token)}/afmeldt{_query(lang)}", status_code=303)


@router.get("/s/{token}/afmeldt")
async def opted_out(request: Request, token: str) -> Response:
    return await _final_page(request, token, "opted_out", "optedout")


@router.get("/tilgaengelighed")
async def accessibility_statement(request: Request) -> Response:
    title = "Accessibility statement" if _lang(request) == "en" else "Tilgængelighedserklæring"
    return render(request, "accessibility.html", {"title": title, "contact": request.app.state.settings.accessibility_contact_email})


def too_many(request: Request, exc: TooManyGuesses) -> Response:
    if request.url.path.startswith("/api/"):
        from fastapi.responses import JSONResponse

        return JSONResponse({"detail": "too many unknown links from this address"}, status_code=429, headers={"Retry-After": str(exc.args[0])})
    response = message(request, "rate", 429)
    response.headers["Retry-After"] = str(exc.args[0])
    return response
