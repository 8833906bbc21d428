"""The interviewer's page: interviews by phone (scope ``responses:interview``, bound to
municipalities like every municipality-bound principal; ``kommuner:all`` reaches every one).

Routes (Danish, ``?lang=en`` puts the questions and the introduction in English and records the
answer as English):

- ``GET  /interview/rounds/{round_id}``: the next citizen to call (the interviewer's current call
  again after a reload), with the phone number, the introduction to read aloud and the whole
  questionnaire on one page; or that nobody is left. Each showing of a number is audited.
- ``POST /interview/rounds/{round_id}/calls/{interview_id}/answers``: the answers (mode phone).
- ``POST …/refused``: the citizen declined; ``POST …/call-back``: call again at a time.

Authentication is the bearer token of every other route (no cookie, so no cross-site form can
act for the interviewer). Thin: every rule is in interviews.py and domain/interviews.py.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path as FilePath

from fastapi import APIRouter, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates

from services.responses import interviews
from services.responses.deps import Interviewer, RoundId, Runtime, Settings, Uow
from services.responses.domain import Questionnaire, render_question_text
from services.responses.domain.interviews import DANISH_TIME, CallBackRefused, call_back_time
from services.responses.service import InvalidAnswers, LinkExpired, LinkUsed
from shared.bus import UnitOfWork
from shared.auth import Principal, ensure_kommune_access

router = APIRouter(tags=["interview"])
templates = Jinja2Templates(directory=FilePath(__file__).parent / "templates")
PAGE = "GET /interview/rounds/{round_id}"

TEXTS = {
    "da": {
        "title": "Interview i telefonen",
        "site": "Borgerblik · interviewer",
        "round": "Runde",
        "kommune": "Kommune",
        "waiting": "Borgere på listen lige nu",
        "call": "Ring til",
        "calls_before": "Tidligere opkald",
        "call_back_due": "Aftalt at ringe igen",
        "intro_heading": "Læs op for borgeren",
        "intro": [
            "Goddag, mit navn er … og jeg ringer fra Borgerblik på vegne af jobcentret i din kommune.",
            "Du har fået et brev om en undersøgelse af, hvordan borgere oplever jobcentret. Vi vil gerne høre din mening.",
            "Det tager omkring 10 minutter. Det er frivilligt at svare, og du kan springe ethvert spørgsmål over.",
            "Dine svar bruges kun samlet og kan ikke føres tilbage til dig. Dit svar påvirker ikke din sag.",
            "Må jeg stille dig spørgsmålene nu?",
        ],
        "questions": "Spørgsmål",
        "questions_note": "Læs spørgsmålet og svarmulighederne op. Marker kun det, borgeren svarer; spring over, hvis borgeren ikke vil svare.",
        "save": "Gem interviewet",
        "outcome": "Hvis interviewet ikke gennemføres",
        "refused": "Borgeren vil ikke deltage",
        "call_back_label": "Ring igen (dato og klokkeslæt, dansk tid)",
        "call_back": "Ring igen senere",
        "empty_heading": "Ingen borgere at ringe til",
        "empty_body": "Der er ingen borgere på listen lige nu: alle har svaret, takket nej, eller skal først ringes op senere.",
        "errors": "Ret dette, før interviewet kan gemmes",
        "done_completed": "Interviewet er gemt og tæller med. Her er den næste borger.",
        "done_refused": "Afslaget er registreret. Her er den næste borger.",
        "done_call_back": "Det er registreret, hvornår der skal ringes igen. Her er den næste borger.",
        "done_answered": "Borgeren har allerede svaret (på nettet eller papir) og er taget af listen. Svaret fra telefonen er ikke gemt.",
        "done_closed": "Borgerens link er lukket (runden er slut eller linket er udløbet). Svaret er ikke gemt.",
        "done_taken": "En anden interviewer har borgeren i telefonen nu. Her er den næste borger.",
        "other_lang": "English",
        "other_lang_code": "en",
    },
    "en": {
        "title": "Interview by phone",
        "site": "Borgerblik · interviewer",
        "round": "Round",
        "kommune": "Municipality",
        "waiting": "Citizens on the list now",
        "call": "Call",
        "calls_before": "Earlier calls",
        "call_back_due": "Agreed to call back",
        "intro_heading": "Read aloud to the citizen",
        "intro": [
            "Hello, my name is … and I am calling from Borgerblik on behalf of the job centre in your municipality.",
            "You have received a letter about a survey of how citizens experience the job centre. We would like to hear your opinion.",
            "It takes about 10 minutes. Answering is voluntary, and you may skip any question.",
            "Your answers are only used together with others' and cannot be traced back to you. They do not affect your case.",
            "May I ask you the questions now?",
        ],
        "questions": "Questions",
        "questions_note": "Read out the question and the answer options. Mark only what the citizen answers; skip a question the citizen does not want to answer.",
        "save": "Save the interview",
        "outcome": "If the interview does not take place",
        "refused": "The citizen does not want to take part",
        "call_back_label": "Call back (date and time, Danish time)",
        "call_back": "Call back later",
        "empty_heading": "Nobody to call",
        "empty_body": "There are no citizens on the list right now: all have answered, declined, or are to be called later.",
        "errors": "Correct this before the interview can be saved",
        "done_completed": "The interview is saved and counts. Here is the next citizen.",
        "done_refused": "The refusal is recorded. Here is the next citizen.",
        "done_call_back": "The call-back time is recorded. Here is the next citizen.",
        "done_answered": "The citizen has already answered (on the web or on paper) and is off the list. The answers from the phone are not saved.",
        "done_closed": "The citizen's link is closed (the round has ended or the link expired). The answers are not saved.",
        "done_taken": "Another interviewer has the citizen on the phone now. Here is the next citizen.",
        "other_lang": "Dansk",
        "other_lang_code": "da",
    },
}
DONE = ("completed", "refused", "call_back", "answered", "closed", "taken")


def _lang(request: Request) -> str:
    return "en" if request.query_params.get("lang") == "en" else "da"


def _query(lang: str, **more: str) -> str:
    params = ({"lang": "en"} if lang == "en" else {}) | more
    return ("?" + "&".join(f"{k}={v}" for k, v in params.items())) if params else ""


def _items(questionnaire: Questionnaire, lang: str, values: dict) -> list[dict]:
    """Every question of every theme (the interviewer reads them in order; a follow-up says
    when it applies through its piped fallback text), with its options and what was marked."""
    themes = []
    for theme in questionnaire.themes:
        questions = []
        for question in theme.questions:
            scale = questionnaire.scale_for(question.id)
            questions.append({
                "id": question.id,
                "text": render_question_text(questionnaire, question.id, {}, lang),  # type: ignore[arg-type]
                "options": [(o.value, o.label.get(lang)) for o in scale.options] if scale else None,  # type: ignore[arg-type]
                "value": values.get(question.id),
            })
        themes.append({"title": theme.title.get(lang), "questions": questions})  # type: ignore[arg-type]
    return themes


def _page(request: Request, round_id: str, call: interviews.Call | None, waiting: int, *, values: dict | None = None,
          errors: list[str] = (), status_code: int = 200) -> HTMLResponse:
    lang = _lang(request)
    t = TEXTS[lang]
    done = request.query_params.get("done")
    response = templates.TemplateResponse(
        request,
        "interview.html",
        {
            "lang": lang,
            "t": t,
            "q": _query(lang),
            "switch_url": request.url.path + _query("en" if lang == "da" else "da"),
            "round_id": round_id,
            "call": call,
            "waiting": waiting,
            "themes": _items(call.questionnaire, lang, values or {}) if call else [],
            "call_back_due": call.call_back_at.astimezone(DANISH_TIME).strftime("%d.%m.%Y %H:%M")
            if call and call.call_back_at else None,
            "done": t[f"done_{done}"] if done in DONE else None,
            "errors": errors,
        },
        status_code=status_code,
    )
    # The phone number must not stay in a cache or the browser's history.
    response.headers["Cache-Control"] = "no-store"
    return response


async def _show_next(request: Request, uow: UnitOfWork, round_id: str, principal: Principal, **kwargs) -> HTMLResponse:
    call = await interviews.next_call(uow, request.app.state.settings, round_id, principal, action=PAGE)
    count = await interviews.waiting(uow, round_id, principal)
    return _page(request, round_id, call, count, **kwargs)


def _next(round_id: str, lang: str, done: str) -> RedirectResponse:
    return RedirectResponse(f"/interview/rounds/{round_id}{_query(lang, done=done)}", status_code=status.HTTP_303_SEE_OTHER)


@router.get("/interview/rounds/{round_id}", response_class=HTMLResponse,
            summary="The interviewer's page: the next citizen to call, with the questionnaire in interviewer mode")
async def interview_page(request: Request, uow: Uow, round_id: RoundId, principal: Interviewer) -> HTMLResponse:
    return await _show_next(request, uow, round_id, principal)


def _authorize(principal: Principal):
    return lambda kommunekode: ensure_kommune_access(principal, kommunekode)


def _not_recorded(exc: Exception, round_id: str, lang: str) -> RedirectResponse:
    """On to the next citizen, saying why the outcome was not recorded (an interview that is not
    there answers 404: errors.py)."""
    if isinstance(exc, interviews.NotCallable):
        return _next(round_id, lang, "taken")
    if isinstance(exc, LinkUsed):
        return _next(round_id, lang, "answered")
    return _next(round_id, lang, "closed")


@router.post("/interview/rounds/{round_id}/calls/{interview_id}/answers", response_class=HTMLResponse,
             status_code=status.HTTP_303_SEE_OTHER, responses={403: {}, 404: {}, 422: {}},
             summary="Record the answers given on the phone (mode phone); spends the citizen's link")
async def record_answers(request: Request, runtime: Runtime, settings: Settings, interview_id: uuid.UUID,
                         round_id: RoundId, principal: Interviewer):
    lang = _lang(request)
    form = await request.form()
    answers = {key: value for key, value in form.items() if key != "action" and isinstance(value, str) and value.strip()}
    # Two transactions: the refused answers' (which holds the call's row) ends before the page
    # claims and shows the call again.
    async with runtime.uow() as uow:
        try:
            await interviews.complete(uow, settings, interview_id, round_id, principal, answers,
                                      language=lang, authorize=_authorize(principal))
        except InvalidAnswers as exc:
            errors = [f"{e.question_id}: {e.message.get(lang)}" for e in exc.result.errors]
        except (interviews.NotCallable, LinkUsed, LinkExpired) as exc:
            return _not_recorded(exc, round_id, lang)
        else:
            return _next(round_id, lang, "completed")
    # Back to the same call (the interviewer's own claim comes first) with what was marked and
    # what is wrong; the number is shown, and audited, again.
    async with runtime.uow() as uow:
        return await _show_next(request, uow, round_id, principal, values=answers, errors=errors, status_code=422)


@router.post("/interview/rounds/{round_id}/calls/{interview_id}/refused", status_code=status.HTTP_303_SEE_OTHER,
             responses={403: {}, 404: {}}, summary="The citizen declined the interview: off the list")
async def record_refusal(request: Request, uow: Uow, interview_id: uuid.UUID, round_id: RoundId, principal: Interviewer):
    lang = _lang(request)
    try:
        await interviews.refuse(uow, interview_id, round_id, principal, _authorize(principal))
    except interviews.NotCallable as exc:
        return _not_recorded(exc, round_id, lang)
    return _next(round_id, lang, "refused")


@router.post("/interview/rounds/{round_id}/calls/{interview_id}/call-back", status_code=status.HTTP_303_SEE_OTHER,
             responses={403: {}, 404: {}, 422: {}}, summary="Call the citizen again at a time (Danish local time)")
async def record_call_back(request: Request, uow: Uow, interview_id: uuid.UUID, round_id: RoundId, principal: Interviewer):
    lang = _lang(request)
    form = await request.form()
    local = form.get("call_back_at")
    try:
        at = call_back_time(local if isinstance(local, str) else "", datetime.now(UTC),
                            await interviews.fieldwork_ends_at(uow, round_id))
    except CallBackRefused as exc:
        # Only read so far: the same transaction claims and shows the call again.
        return await _show_next(request, uow, round_id, principal, errors=[str(exc)], status_code=422)
    try:
        await interviews.call_back(uow, interview_id, round_id, principal, at, _authorize(principal))
    except interviews.NotCallable as exc:
        return _not_recorded(exc, round_id, lang)
    return _next(round_id, lang, "call_back")
