"""The citizen's questionnaire as server-rendered pages (no JavaScript needed).

Routes (``?lang=<code>`` chooses the language on every page; none: Danish):
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

The language is a query parameter, carried by every link, form action and redirect, so it
persists through the flow without a cookie or JavaScript; every page lists the round's offered
languages as plain links (domain/languages.py). A language the round does not offer shows Danish.
The answers are recorded with the language of the page they were sent from.

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
from services.responses.deps import Settings, Uow
from services.responses.domain import Questionnaire, is_visible, scrub_free_text, validate_answers
from services.responses.domain.languages import LANGUAGES, NATIVE_NAMES, SOURCE_LANGUAGE, direction
from services.responses.domain.translations import IN_SOURCE, localize
from services.responses.formstore import FormStore
from services.responses.schemas import TOKEN_PATTERN
from services.responses.protection import CSRF_FIELD, csrf_token_for, csrf_valid, is_tls, set_csrf_cookie, unknown_link_answer
from services.responses.texts import TEXTS, long_date, number, offered_for
from shared.bus import UnitOfWork

router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=Path(__file__).parent / "templates")
# Templates ship with the code: no stat() of every template file on every render.
templates.env.auto_reload = False
TOKEN_FORMAT = re.compile(TOKEN_PATTERN)
ACTIONS = {"next", "back", "save", "submit"}
DANISH_TIME = ZoneInfo("Europe/Copenhagen")
# The page for each answer to an unknown link (protection.unknown_link_answer).
UNKNOWN_LINK_PAGES = {503: "pending", 429: "rate", 404: "unknown"}


def _offered(request: Request) -> tuple[str, ...]:
    """The languages this request may be shown in: its link's round's (``offer``), or all."""
    return getattr(request.state, "languages", LANGUAGES)


def _lang(request: Request) -> str:
    wanted = request.query_params.get("lang")
    return wanted if wanted in _offered(request) else SOURCE_LANGUAGE


def _query(lang: str) -> str:
    return "" if lang == SOURCE_LANGUAGE else f"?lang={lang}"


def offer(request: Request, respondent, questionnaire_key: str | None = None) -> str:
    """Fix the languages the link's round offers for this request (round.defined's ``languages``
    and ``translation_status``; each language's status is the weakest of the page texts and the
    questionnaire's translations) and return the page's language."""
    request.state.languages = offered_for(
        questionnaire_key or getattr(respondent, "questionnaire_key", None),
        getattr(respondent, "round_languages", None),
        getattr(respondent, "round_translation_status", None),
    )
    return _lang(request)


def render(request: Request, template: str, context: dict, status_code: int = 200) -> HTMLResponse:
    lang = _lang(request)
    csrf_token, new = csrf_token_for(request)
    response = templates.TemplateResponse(
        request,
        template,
        {
            "lang": lang,
            "dir": direction(lang),
            "t": TEXTS[lang],
            "q": _query(lang),
            "languages": [
                {"code": code, "name": NATIVE_NAMES[code], "dir": direction(code), "url": request.url.path + _query(code)}
                for code in _offered(request)
            ],
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
        status_code, headers = unknown_link_answer(request)
        response = message(request, UNKNOWN_LINK_PAGES[status_code], status_code)
        response.headers.update(headers)
        return response
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


def _store(request: Request) -> FormStore:
    """The citizen's hot path: page views and the final submit (see formstore.py)."""
    return request.app.state.form_store


def _base(token: str) -> str:
    return f"/s/{token}"


# --- start ------------------------------------------------------------------------------------


async def _open_survey(request: Request, token: str):
    """The open link's respondent and questionnaire (its version fixed on the first visit), with
    the languages of its round offered; or the page saying what is wrong with the link."""
    try:
        _guard(request, token)
        respondent, questionnaire = await _store(request).open_survey(token)
    except (service.UnknownLink, service.LinkUsed, service.LinkExpired) as exc:
        return link_problem(request, exc)
    offer(request, respondent, questionnaire.version_key)
    return respondent, questionnaire


@router.get("/s/{token}")
async def start(request: Request, token: str) -> Response:
    opened = await _open_survey(request, token)
    if isinstance(opened, Response):
        return opened
    respondent, questionnaire = opened
    lang = _lang(request)
    resume = min(max(respondent.last_page + 1, 1), len(questionnaire.themes)) if respondent.draft or respondent.last_page else 1
    return render(request, "start.html", {"lq": localize(questionnaire, lang), "base": _base(token), "resume_page": resume})


# --- one theme per page -----------------------------------------------------------------------


def _page_items(questionnaire: Questionnaire, theme_index: int, values: dict, errors: dict[str, str], lang: str) -> list[dict]:
    """The visible questions of a page, with piped text, options and the error for each, in
    ``lang`` (a text the translation lacks in Danish, marked)."""
    lq = localize(questionnaire, lang)
    theme = questionnaire.themes[theme_index]
    # Visibility and piping look at answers that validated; raw posted values may be invalid.
    answers = {k: v for k, v in values.items() if isinstance(v, str)}
    items = []
    for question in theme.questions:
        if not is_visible(questionnaire, question, answers):
            continue
        items.append(
            {
                "question": question,
                "text": lq.question_text(question.id, answers),
                "help": lq.help(question.id),
                "limit": TEXTS[lang]["max_chars"].format(n=number(question.text_limit, lang)),
                "options": lq.options(question.id),
                "value": values.get(question.id),
                "error": errors.get(question.id),
            }
        )
    return items


def _error_message(error, lang: str) -> str:
    """An answer's error in the page's language: Danish and English come with the error, the
    other languages from the page texts."""
    if lang in IN_SOURCE:
        return error.message.get(lang)
    if error.code == "too_long":
        return TEXTS[lang]["err_too_long"].format(
            max_length=number(error.params["max_length"], lang), length=number(error.params["length"], lang)
        )
    return TEXTS[lang]["err_invalid"]


def _render_page(
    request: Request, token: str, questionnaire: Questionnaire, n: int, values: dict, result=None, followup=False
) -> HTMLResponse:
    lang = _lang(request)
    theme = questionnaire.themes[n - 1]
    theme_questions = {q.id for q in theme.questions}
    page_errors = [e for e in (result.errors if result else ()) if e.question_id in theme_questions]
    errors = {e.question_id: _error_message(e, lang) for e in page_errors}
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
            "lq": localize(questionnaire, lang),
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
    opened = await _open_survey(request, token)
    if isinstance(opened, Response):
        return opened
    respondent, questionnaire = opened
    lang = _lang(request)
    if not 1 <= n <= len(questionnaire.themes):
        return RedirectResponse(f"{_base(token)}/side/1{_query(lang)}", status_code=303)
    return _render_page(request, token, questionnaire, n, dict(respondent.draft), followup=request.query_params.get("ny") == "1")


@router.post("/s/{token}/side/{n}")
async def save_page(request: Request, uow: Uow, settings: Settings, token: str, n: int) -> Response:
    lang = _lang(request)
    q = _query(lang)
    form = await request.form()
    if not csrf_valid(request, form.get(CSRF_FIELD)):  # type: ignore[arg-type]
        return message(request, "csrf", 403, link=(f"{_base(token)}/side/{n}{q}", TEXTS[lang]["csrf_back"]))
    try:
        _guard(request, token)
    except service.UnknownLink as exc:
        return link_problem(request, exc)
    return await _save_page(request, uow, settings, form, token, n, lang, q)


async def _save_page(request: Request, uow: UnitOfWork, settings, form, token: str, n: int, lang: str, q: str) -> Response:
    try:
        respondent, questionnaire = await _store(request).open_survey(token)
    except service.LinkUsed as exc:
        if exc.status == "submitted" and form.get("action") == "submit":
            # A double click or a second tab: the answers are in, so show the receipt.
            return RedirectResponse(f"{_base(token)}/tak{q}", status_code=303)
        return link_problem(request, exc)
    except (service.UnknownLink, service.LinkExpired) as exc:
        return link_problem(request, exc)
    lang = offer(request, respondent, questionnaire.version_key)
    q = _query(lang)
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
            await _store(request).submit(
                token, respondent, questionnaire, scrub_free_text(questionnaire, result.accepted), language=lang
            )
            return RedirectResponse(f"{_base(token)}/tak{q}", status_code=303)
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


async def _open_link(request: Request, token: str):
    """The open link's respondent, with the languages of its round offered; or the page saying
    what is wrong with the link."""
    try:
        _guard(request, token)
        respondent = await _store(request).open_link(token)
    except (service.UnknownLink, service.LinkUsed, service.LinkExpired) as exc:
        return link_problem(request, exc)
    offer(request, respondent)
    return respondent


@router.get("/s/{token}/gemt")
async def saved(request: Request, token: str) -> Response:
    respondent = await _open_link(request, token)
    if isinstance(respondent, Response):
        return respondent
    lang = _lang(request)
    resume = respondent.last_page + 1
    return message(request, "saved", 200, link=(f"{_base(token)}/side/{resume}{_query(lang)}", TEXTS[lang]["saved_continue"]))


async def _final_page(request: Request, token: str, status: str, page: str, extra: tuple[str, ...] | list[str] = ()) -> Response:
    """The page after a link is spent; anyone else who opens it is sent back to the start."""
    try:
        respondent = await _status(request, token)
    except service.UnknownLink as exc:
        return link_problem(request, exc)
    offer(request, respondent)
    if respondent.status != status:
        return RedirectResponse(f"{_base(token)}{_query(_lang(request))}", status_code=303)
    t = TEXTS[_lang(request)]
    return message(request, page, 200, extra=[t[key] for key in extra])


@router.get("/s/{token}/tak")
async def thanks(request: Request, token: str) -> Response:
    return await _final_page(request, token, "submitted", "thanks", extra=["thanks_close"])


@router.get("/s/{token}/afmeld")
async def opt_out_form(request: Request, token: str) -> Response:
    respondent = await _open_link(request, token)
    if isinstance(respondent, Response):
        return respondent
    return render(request, "optout.html", {"base": _base(token)})


@router.post("/s/{token}/afmeld")
async def opt_out(request: Request, uow: Uow, token: str) -> Response:
    lang = _lang(request)
    form = await request.form()
    if not csrf_valid(request, form.get(CSRF_FIELD)):  # type: ignore[arg-type]
        return message(request, "csrf", 403, link=(f"{_base(token)}/afmeld{_query(lang)}", TEXTS[lang]["csrf_back"]))
    try:
        _guard(request, token)
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
    return render(request, "accessibility.html", {"contact": request.app.state.settings.accessibility_contact_email})
