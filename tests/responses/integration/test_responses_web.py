"""The responses service over HTTP against real PostgreSQL and a real broker: the JSON API the
demo uses, the server-rendered form (fill, save, resume, piping, submit, opt out), link states,
CSRF, the token-guessing limit, security headers, paper entry and questionnaire administration."""

from __future__ import annotations

import asyncio
import re
from datetime import timedelta

import sqlalchemy as sa

from responses_helpers import csrf_of, issue, read_events, token_hash
from services.responses.models import Respondent, Response
from services.responses.protection import GuessLimiter
from shared.testing.fixtures import bearer


async def _response_row(app, token: str) -> Response | None:
    async with app.state.runtime.sessionmaker() as session:
        return (await session.execute(sa.select(Response).where(Response.token_hash == token_hash(token)))).scalar_one_or_none()


async def _respondent(app, token: str) -> Respondent:
    async with app.state.runtime.sessionmaker() as session:
        return await session.get(Respondent, token_hash(token))


async def _events_for(kafka_bootstrap, prefix, topic, pseudonym, want=1):
    events = await read_events(kafka_bootstrap, f"{prefix}{topic}", want=0, timeout=5)
    deadline = asyncio.get_running_loop().time() + 30
    while sum(e["data"]["pseudonym"] == pseudonym for e in events) < want and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.3)
        events = await read_events(kafka_bootstrap, f"{prefix}{topic}", want=0, timeout=5)
    return [e for e in events if e["data"]["pseudonym"] == pseudonym]


def _pseudonym(token: str) -> str:
    return "ps-" + token_hash(token)[:16]


async def _post_page(client, token, n, data, *, action="next", lang=""):
    page = await client.get(f"/s/{token}/side/{n}{lang}")
    form = {"csrf_token": csrf_of(page.text), "shown": re.search(r'name="shown" value="([^"]*)"', page.text).group(1), "action": action, **data}
    return await client.post(f"/s/{token}/side/{n}{lang}", data=form)


# --- JSON API (the demo and e2e use it) -----------------------------------------------------------


async def test_json_submission_keeps_working_and_publishes_option_codes(app, client, kafka_bootstrap, prefix):
    token, other = await issue(app, kafka_bootstrap, prefix, 2)
    r = await client.post(f"/api/survey/{token}/submission", json={"answers": {"q1": 4, "q13": 5}})
    assert r.status_code == 201, r.text
    assert (await client.post(f"/api/survey/{token}/submission", json={"answers": {"q1": 4}})).status_code == 409
    assert (await client.post("/api/survey/unknownunknownunknown123/submission", json={"answers": {}})).status_code == 404
    everything = {f"q{i}": (i % 5) + 1 for i in range(1, 14)}
    assert (await client.post(f"/api/survey/{other}/submission", json={"answers": everything})).status_code == 201

    row = await _response_row(app, token)
    assert row.answers == {"q1": "enig", "q13": "meget_tilfreds"}
    assert (row.mode, row.questionnaire_key) == ("web", "kl_core@1")
    [event] = await _events_for(kafka_bootstrap, prefix, "response.submitted", _pseudonym(token))
    data = event["data"]
    assert data["answers"] == {"q1": "enig", "q13": "meget_tilfreds"}
    assert (data["mode"], data["questionnaire_id"], data["questionnaire_version"]) == ("web", "kl_core", 1)
    assert (data["stratum"], data["bands"]["age_band"], data["design_weight"]) == ("101|dagpenge", "30-39", 2.5)


async def test_json_submission_refuses_invalid_answers_without_spending_the_link(app, client, kafka_bootstrap, prefix):
    [token] = await issue(app, kafka_bootstrap, prefix)
    r = await client.post(f"/api/survey/{token}/submission", json={"answers": {"q1": 9, "q99": "x"}})
    assert r.status_code == 422
    assert {e["question_id"] for e in r.json()["detail"]} == {"q1", "q99"}
    assert (await _respondent(app, token)).status == "open"


async def test_concurrent_submissions_spend_the_link_once(app, client, kafka_bootstrap, prefix):
    [token] = await issue(app, kafka_bootstrap, prefix)
    results = await asyncio.gather(
        *[client.post(f"/api/survey/{token}/submission", json={"answers": {"q1": i % 5 + 1}}) for i in range(6)]
    )
    assert sorted(r.status_code for r in results) == [201] + [409] * 5
    assert len(await _events_for(kafka_bootstrap, prefix, "response.submitted", _pseudonym(token))) == 1


# --- the form ------------------------------------------------------------------------------------


async def test_fill_save_resume_pipe_and_submit(app, client, kafka_bootstrap, prefix):
    [token] = await issue(app, kafka_bootstrap, prefix)
    start = await client.get(f"/s/{token}")
    assert start.status_code == 200 and "Start" in start.text
    assert "bb_csrf" in start.headers.get("set-cookie", "")
    page1 = await client.get(f"/s/{token}/side/1")
    assert "Side 1 af 5" in page1.text and 'class="form-radio"' in page1.text and "<script" not in page1.text

    r = await _post_page(client, token, 1, {"q1": "enig", "q2": "meget_enig"})
    assert (r.status_code, r.headers["location"]) == (303, f"/s/{token}/side/2")
    r = await _post_page(client, token, 2, {"q4": "ved_ikke"}, action="save")
    assert (r.status_code, r.headers["location"]) == (303, f"/s/{token}/gemt")
    assert (await client.get(r.headers["location"])).status_code == 200
    saved = await _respondent(app, token)
    assert saved.draft == {"q1": "enig", "q2": "meget_enig", "q4": "ved_ikke"} and saved.last_page == 2

    # Resume from the same link in another browser (no cookies): the answers are there.
    client.cookies.clear()
    resumed = await client.get(f"/s/{token}")
    assert "Fortsæt, hvor du slap" in resumed.text and f"/s/{token}/side/3" in resumed.text
    page1 = await client.get(f"/s/{token}/side/1")
    assert re.search(r'value="enig" class="form-radio" checked', page1.text)
    # Back from page 1 is not offered; back from page 2 goes to 1 and keeps page 2's answer.
    r = await _post_page(client, token, 2, {"q4": "ved_ikke", "q5": "uenig"}, action="back")
    assert r.headers["location"] == f"/s/{token}/side/1"

    # Page 5: answering q13 makes q14 appear (show_if) with q13's label piped into it.
    page5 = await client.get(f"/s/{token}/side/5")
    assert "Side 5 af 5" in page5.text and 'name="q14"' not in page5.text
    r = await _post_page(client, token, 5, {"q13": "tilfreds", "q15": "Mere kontakt"}, action="submit")
    assert r.status_code == 303 and r.headers["location"] == f"/s/{token}/side/5?ny=1#q14"
    page5 = await client.get(f"/s/{token}/side/5?ny=1")
    assert "hvorfor du har været tilfreds?" in page5.text and 'name="q14"' in page5.text
    r = await _post_page(
        client, token, 5,
        {"q13": "tilfreds", "q14": "Min sagsbehandler Mette Hansen var god. Ring 20 30 40 50, cpr 010190-1234", "q15": "Mere kontakt"},
        action="submit",
    )
    assert (r.status_code, r.headers["location"]) == (303, f"/s/{token}/tak")
    thanks = await client.get(f"/s/{token}/tak")
    assert thanks.status_code == 200 and "Tak for dine svar" in thanks.text

    # A double click (or the second tab) posting again does not submit twice.
    again = await client.post(f"/s/{token}/side/5", data={"csrf_token": client.cookies["bb_csrf"], "shown": "q13,q14,q15", "q13": "utilfreds", "action": "submit"})
    assert (again.status_code, again.headers["location"]) == (303, f"/s/{token}/tak")
    used = await client.get(f"/s/{token}")
    assert used.status_code == 409 and "Du har allerede svaret" in used.text

    row = await _response_row(app, token)
    assert row.answers["q13"] == "tilfreds" and row.answers["q5"] == "uenig"
    for secret in ("Mette", "Hansen", "20 30 40 50", "010190-1234"):
        assert secret not in row.answers["q14"]
    assert "[TELEFON]" in row.answers["q14"] and "[CPR]" in row.answers["q14"]
    [event] = await _events_for(kafka_bootstrap, prefix, "response.submitted", _pseudonym(token))
    assert event["data"]["answers"] == row.answers and event["data"]["mode"] == "web"
    assert row.language == "da" and event["data"]["language"] == "da"


async def test_a_burst_of_form_submits_spends_the_link_once_with_one_event(app, client, kafka_bootstrap, prefix):
    """The form's submit (formstore.py): six posts at once (double clicks, a second tab) all land
    on the receipt, but one answer row and one response.submitted are written, with the answers
    validated, scrubbed and tied to the questionnaire version the citizen was given."""
    [token] = await issue(app, kafka_bootstrap, prefix)
    page = await client.get(f"/s/{token}/side/5")
    assert (await _respondent(app, token)).questionnaire_key == "kl_core@1"
    form = {"csrf_token": csrf_of(page.text), "shown": "q13,q15", "q15": "Ring til Mette på 20 30 40 50", "action": "submit"}
    results = await asyncio.gather(*[client.post(f"/s/{token}/side/5", data=form) for _ in range(6)])
    assert {(r.status_code, r.headers["location"]) for r in results} == {(303, f"/s/{token}/tak")}
    assert (await client.get(f"/s/{token}/tak")).status_code == 200

    row = await _response_row(app, token)
    assert row.mode == "web" and row.questionnaire_key == "kl_core@1" and row.questionnaire_version == 1
    assert "20 30 40 50" not in row.answers["q15"] and "Mette" not in row.answers["q15"]
    spent = await _respondent(app, token)
    assert spent.status == "submitted" and spent.finished_at is not None and spent.draft == {}
    [event] = await _events_for(kafka_bootstrap, prefix, "response.submitted", _pseudonym(token))
    assert event["data"]["answers"] == row.answers and event["data"]["stratum"] == "101|dagpenge"
    assert event["data"]["bands"] == {"gender": "K", "age_band": "30-39", "duration_band": "12-24m"}


async def test_form_submit_after_the_deadline_is_refused_and_stores_nothing(app, client, kafka_bootstrap, prefix):
    [token] = await issue(app, kafka_bootstrap, prefix)
    page = await client.get(f"/s/{token}/side/5")
    # The round closes between loading the page and sending it.
    async with app.state.runtime.sessionmaker() as session:
        await session.execute(
            sa.update(Respondent).where(Respondent.token_hash == token_hash(token)).values(expires_at=sa.func.now() - sa.text("interval '1 minute'"))
        )
        await session.commit()
    r = await client.post(f"/s/{token}/side/5", data={"csrf_token": csrf_of(page.text), "shown": "q13,q15", "q15": "Fint", "action": "submit"})
    assert r.status_code == 410 and "Undersøgelsen er lukket" in r.text
    assert await _response_row(app, token) is None and (await _respondent(app, token)).status == "open"


async def test_answering_with_real_links_never_drains_the_guessing_budget(app, client, kafka_bootstrap, prefix):
    """Many citizens behind one address (a job centre, a library, a load test) are not guesses."""
    app.state.limiter = GuessLimiter("2/hour", "1000/hour")
    tokens = await issue(app, kafka_bootstrap, prefix, 4)
    for token in tokens:
        client.cookies.clear()
        page = await client.get(f"/s/{token}/side/5")
        assert page.status_code == 200
        r = await client.post(f"/s/{token}/side/5", data={"csrf_token": csrf_of(page.text), "shown": "q13,q15", "action": "submit"})
        assert (r.status_code, r.headers["location"]) == (303, f"/s/{token}/tak")
        assert (await client.get(f"/s/{token}/tak")).status_code == 200
        assert (await client.get(f"/s/{token}")).status_code == 409  # a used link is not a guess either
    assert [(await client.get(f"/s/guessguessguessguess{i:04d}")).status_code for i in range(3)] == [404, 404, 429]


async def test_validation_errors_show_the_error_summary_and_keep_the_input(app, client, kafka_bootstrap, prefix):
    [token] = await issue(app, kafka_bootstrap, prefix)
    await client.get(f"/s/{token}")
    long_text = "x" * 2001
    r = await _post_page(client, token, 5, {"q13": "ikke_en_mulighed", "q15": long_text})
    assert r.status_code == 400
    assert "Der er et problem" in r.text and 'href="#q15"' in r.text and 'href="#q13-1"' in r.text
    assert "<title>Fejl: " in r.text and "form-error-message" in r.text
    assert long_text in r.text  # what the citizen wrote is not lost
    assert (await _respondent(app, token)).draft == {}


async def test_english_version(app, client, kafka_bootstrap, prefix):
    [token] = await issue(app, kafka_bootstrap, prefix)
    page = await client.get(f"/s/{token}/side/1?lang=en")
    assert '<html lang="en" dir="ltr">' in page.text and "Page 1 of 5" in page.text
    assert "Do you feel that you are met with trust at the job centre?" in page.text
    assert f'action="/s/{token}/side/1?lang=en"' in page.text
    r = await _post_page(client, token, 1, {"q1": "enig"}, lang="?lang=en")
    assert r.headers["location"] == f"/s/{token}/side/2?lang=en"
    # Sent in English: the answer records its language (response.submitted and the stored row).
    r = await _post_page(client, token, 5, {"q15": "More contact"}, action="submit", lang="?lang=en")
    assert r.headers["location"] == f"/s/{token}/tak?lang=en"
    assert (await _response_row(app, token)).language == "en"
    [event] = await _events_for(kafka_bootstrap, prefix, "response.submitted", _pseudonym(token))
    assert (event["data"]["mode"], event["data"]["language"]) == ("web", "en")


async def test_opt_out_stops_reminders(app, client, kafka_bootstrap, prefix):
    [token] = await issue(app, kafka_bootstrap, prefix)
    form = await client.get(f"/s/{token}/afmeld")
    assert form.status_code == 200 and "Jeg ønsker ikke at deltage" in form.text
    r = await client.post(f"/s/{token}/afmeld", data={"csrf_token": csrf_of(form.text)})
    assert (r.status_code, r.headers["location"]) == (303, f"/s/{token}/afmeldt")
    assert (await client.get(f"/s/{token}/afmeldt")).status_code == 200
    again = await client.get(f"/s/{token}")
    assert again.status_code == 409 and "Du har meldt fra" in again.text
    assert (await client.post(f"/api/survey/{token}/submission", json={"answers": {"q1": 4}})).status_code == 409
    [event] = await _events_for(kafka_bootstrap, prefix, "response.opted_out", _pseudonym(token))
    assert event["data"]["round_id"] == "r-test"
    assert await _response_row(app, token) is None


async def test_unknown_and_expired_links_get_a_clear_page(app, client, kafka_bootstrap, prefix):
    [expired] = await issue(app, kafka_bootstrap, prefix, expires_in=timedelta(days=-1))
    r = await client.get(f"/s/{expired}")
    assert r.status_code == 410 and "Undersøgelsen er lukket" in r.text
    assert (await client.get(f"/s/{expired}/side/1")).status_code == 410
    assert (await client.post(f"/api/survey/{expired}/submission", json={"answers": {}})).status_code == 410
    r = await client.get("/s/AAAAAAAAAAAAAAAAAAAAAAAAAAAA")
    assert r.status_code == 404 and "Vi kan ikke finde linket" in r.text
    assert (await client.get("/s/short")).status_code == 404


async def test_csrf_is_required_on_every_form_post(app, client, kafka_bootstrap, prefix):
    [token] = await issue(app, kafka_bootstrap, prefix)
    page = await client.get(f"/s/{token}/side/1")
    good = csrf_of(page.text)
    for data in ({"q1": "enig", "shown": "q1"}, {"q1": "enig", "shown": "q1", "csrf_token": "forged-forged-forged-forged"}):
        r = await client.post(f"/s/{token}/side/1", data=data)
        assert r.status_code == 403 and "Siden var udløbet" in r.text
    client.cookies.clear()  # a cross-site post carries no (or another) cookie
    r = await client.post(f"/s/{token}/side/1", data={"q1": "enig", "shown": "q1", "csrf_token": good})
    assert r.status_code == 403
    assert (await client.post(f"/s/{token}/afmeld", data={"csrf_token": good})).status_code == 403
    respondent = await _respondent(app, token)
    assert respondent.draft == {} and respondent.status == "open"


async def test_token_guessing_is_rate_limited_but_a_valid_link_is_always_served(app, client, kafka_bootstrap, prefix):
    [token] = await issue(app, kafka_bootstrap, prefix)
    app.state.limiter = GuessLimiter("3/hour", "1000/hour")
    for i in range(3):
        assert (await client.get(f"/s/guessguessguessguess{i:04d}")).status_code == 404
    r = await client.get("/s/guessguessguessguess0003")
    assert r.status_code == 429 and int(r.headers["retry-after"]) > 0 and "For mange forsøg" in r.text
    r = await client.post("/api/survey/guessguessguessguess0004/submission", json={"answers": {}})
    assert r.status_code == 429 and r.headers["retry-after"]
    assert (await client.get(f"/s/{token}")).status_code == 200  # the right link: served all the same
    r = await client.post(f"/api/survey/{token}/submission", json={"answers": {}})
    assert r.status_code == 201, r.text


async def test_a_citizen_answers_from_an_address_that_just_made_thousands_of_wrong_guesses(app, client, kafka_bootstrap, prefix):
    """A job centre's shared PC, a library, a mobile operator's NAT: one address, one guesser, and
    a citizen mid-questionnaire. The production budgets (settings) apply."""
    [token] = await issue(app, kafka_bootstrap, prefix)
    page = await client.get(f"/s/{token}/side/1")
    assert page.status_code == 200
    statuses = [(await client.get(f"/s/guess{i:019d}")).status_code for i in range(2000)]
    statuses += [(await client.post(f"/api/survey/guess{i:019d}/submission", json={"answers": {}})).status_code for i in range(1000)]
    assert statuses.count(404) == 20 and statuses.count(429) == 2980  # the address's budget: 20 a minute
    # The citizen, from the same address, goes on where they were and sends their answers.
    page = await client.get(f"/s/{token}/side/5")
    assert page.status_code == 200
    r = await client.post(f"/s/{token}/side/5", data={"csrf_token": csrf_of(page.text), "shown": "q13,q15", "action": "submit"})
    assert (r.status_code, r.headers["location"]) == (303, f"/s/{token}/tak")
    assert (await client.get(f"/s/{token}/tak")).status_code == 200
    assert (await _respondent(app, token)).status == "submitted"


async def test_addresses_behind_a_trusted_proxy_have_their_own_budgets(app, kafka_bootstrap, prefix):
    """uvicorn's --forwarded-allow-ips (TRUSTED_PROXIES in the Dockerfile and compose) gives the app
    the client's address from X-Forwarded-For, only when the peer is a trusted proxy."""
    import httpx
    from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

    app.state.limiter = GuessLimiter("3/hour", "1000/hour")
    behind_proxy = ProxyHeadersMiddleware(app, trusted_hosts="10.0.0.2")

    def via(peer: str) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=behind_proxy, client=(peer, 40000))
        return httpx.AsyncClient(transport=transport, base_url="http://testserver")

    guesser, citizen = {"x-forwarded-for": "203.0.113.9"}, {"x-forwarded-for": "198.51.100.7"}
    async with via("10.0.0.2") as proxy, via("192.0.2.50") as untrusted:
        assert [(await proxy.get(f"/s/guessguessguessguess{i:04d}", headers=guesser)).status_code for i in range(4)] == [404, 404, 404, 429]
        assert (await proxy.get("/s/guessguessguessguess0100", headers=citizen)).status_code == 404  # another address
        # A forwarded address from a peer that is not a trusted proxy is ignored: its own budget.
        assert [(await untrusted.get(f"/s/guessguessguessguess{i:04d}", headers=citizen)).status_code for i in range(4)] == [404, 404, 404, 429]
        assert (await proxy.get("/s/guessguessguessguess0101", headers=citizen)).status_code == 404


async def test_the_global_budget_turns_unknown_links_from_any_address_into_429():
    limiter = GuessLimiter("5/minute", "4/minute")
    assert [limiter.miss(f"192.0.2.{i}") for i in range(4)] == [None] * 4
    assert limiter.miss("192.0.2.99") is not None  # a fresh address, but every address's budget is spent
    assert limiter.per_address.failed(("address", "192.0.2.99")) is None  # its own budget was not the reason


async def test_security_headers(app, client, kafka_bootstrap, prefix):
    [token] = await issue(app, kafka_bootstrap, prefix)
    r = await client.get(f"/s/{token}/side/1")
    csp = r.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp and "script-src" not in csp
    assert r.headers["referrer-policy"] == "no-referrer"
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["cache-control"] == "no-store"
    assert "strict-transport-security" not in r.headers
    assert "strict-transport-security" in (await client.get("https://testserver/tilgaengelighed")).headers
    css = await client.get("/static/dkfds/css/dkfds.min.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    font = await client.get("/static/dkfds/fonts/IBMPlexSans/complete/woff2/IBMPlexSans-Regular.woff2")
    assert font.status_code == 200
    statement = await client.get("/tilgaengelighed")
    assert statement.status_code == 200 and "Tilgængelighedserklæring" in statement.text


# --- paper --------------------------------------------------------------------------------------


async def test_paper_answers_are_keyed_in_by_an_operator_of_the_municipality(app, client, kafka_bootstrap, prefix, dev_issuer):
    [token, other] = await issue(app, kafka_bootstrap, prefix, 2, kommunekode="751")
    operator = dev_issuer.mint("operator-751", ["responses:paper"], "751")
    stranger = dev_issuer.mint("operator-101", ["responses:paper"], "101")
    no_scope = dev_issuer.mint("reader-751", ["aggregates:read"], "751")
    body = {"token": token, "answers": {"q1": 5, "q13": "tilfreds", "q15": "Skriv til mig på a@b.dk"}}

    assert (await client.post("/api/paper/responses", json=body)).status_code == 401
    assert (await client.post("/api/paper/responses", json=body, headers=bearer(no_scope))).status_code == 403
    assert (await client.post("/api/paper/responses", json=body, headers=bearer(stranger))).status_code == 403
    assert (await _respondent(app, token)).status == "open"

    r = await client.post("/api/paper/responses", json=body, headers=bearer(operator))
    assert r.status_code == 201, r.text
    assert r.json()["mode"] == "paper" and r.json()["questionnaire_key"] == "kl_core@1"
    assert (await client.post("/api/paper/responses", json=body, headers=bearer(operator))).status_code == 409
    row = await _response_row(app, token)
    assert (row.mode, row.entered_by) == ("paper", "operator-751")
    assert row.answers == {"q1": "meget_enig", "q13": "tilfreds", "q15": "Skriv til mig på [EMAIL]"}
    [event] = await _events_for(kafka_bootstrap, prefix, "response.submitted", _pseudonym(token))
    assert event["data"]["mode"] == "paper"
    # The web answer of another citizen still says web.
    assert (await client.post(f"/api/survey/{other}/submission", json={"answers": {"q1": 1}})).status_code == 201
    assert (await _response_row(app, other)).mode == "web"


# --- questionnaire administration ---------------------------------------------------------------

SUPPLEMENT = {
    "kommunekode": "101",
    "version": 1,
    "questions": [
        {
            "id": "k101_tolk",
            "kind": "likert5",
            "scale": "enighed",
            "text": {"da": "Fik du den tolkebistand, du havde brug for?", "en": "Did you get the interpreting help you needed?"},
        }
    ],
}


async def test_round_questionnaire_with_module_and_supplement(app, client, kafka_bootstrap, prefix, dev_issuer):
    admin = dev_issuer.mint("kl-admin", ["rounds:admin", "kommuner:all"])
    local_other = dev_issuer.mint("admin-147", ["rounds:admin"], "147")
    assert (await client.put("/api/admin/supplements/101/1", json=SUPPLEMENT, headers=bearer(local_other))).status_code == 403
    assert (await client.put("/api/admin/supplements/101/1", json=SUPPLEMENT, headers=bearer(admin))).status_code == 201
    assert (await client.put("/api/admin/supplements/101/1", json=SUPPLEMENT, headers=bearer(admin))).status_code == 200
    changed = {**SUPPLEMENT, "title": {"da": "Andet", "en": "Other"}}
    assert (await client.put("/api/admin/supplements/101/1", json=changed, headers=bearer(admin))).status_code == 409

    config = {"core": "kl_core_v1", "modules": ["digital_tools_v1"], "supplements": {"101": 1}}
    r = await client.put("/api/admin/rounds/r-adm/questionnaire", json=config, headers=bearer(admin))
    assert r.status_code == 200, r.text
    assert r.json()["version_keys"] == {"default": "kl_core@1+digital_tools@1", "101": "kl_core@1+digital_tools@1+lokal_101@1"}
    bad = {"core": "kl_core_v1", "supplements": {"101": 7}}
    assert (await client.put("/api/admin/rounds/r-adm/questionnaire", json=bad, headers=bearer(admin))).status_code == 422

    first, later = await issue(app, kafka_bootstrap, prefix, 2, round_id="r-adm", kommunekode="101")
    last_page = await client.get(f"/s/{first}/side/8")  # 5 core themes, 2 module themes, 1 local
    assert "Side 8 af 8" in last_page.text and "tolkebistand" in last_page.text

    # The round changes after `first` opened its link: `first` keeps the version it was given.
    r = await client.put("/api/admin/rounds/r-adm/questionnaire", json={"core": "kl_core_v1"}, headers=bearer(admin))
    assert r.json()["version_keys"] == {"default": "kl_core@1"}
    r = await client.post(f"/api/survey/{first}/submission", json={"answers": {"q1": 3, "dt1": "ja", "k101_tolk": 4}})
    assert r.status_code == 201, r.text
    row = await _response_row(app, first)
    assert row.questionnaire_key == "kl_core@1+digital_tools@1+lokal_101@1"
    assert row.answers == {"q1": "hverken_enig_eller_uenig", "dt1": "ja", "k101_tolk": "enig"}
    # `later` opens after the change and gets the plain core: module answers are refused.
    r = await client.post(f"/api/survey/{later}/submission", json={"answers": {"dt1": "ja"}})
    assert r.status_code == 422
