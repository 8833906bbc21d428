"""Issue 24's paper questionnaire through the running dispatch and responses services (real
PostgreSQL, real broker, SF1601 as a local fake): the test plays ingest and sampling (the round's
definition, the sample, the released contacts, one citizen exempt from Digital Post).

Responses offers the round's questionnaire for print (questionnaire.offered) when it learns the
round; at the first reminder's date the plan's paper step sends the exempt citizen a printed
questionnaire by Fysisk Post (its PDF names the answer id and the link), and, where the plan says
so, every citizen who has not answered by then; the answers keyed in against the answer id count
once, and a second entry is refused with nothing written."""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime, timedelta

import pypdf
import sqlalchemy as sa

from dispatch_harness import consume_all, invitations, make_settings, produce, round_defined, sample, step_statuses, wait_for
from services.dispatch.links import token_hash
from services.dispatch.main import create_app as create_dispatch
from services.dispatch.models import DispatchStep, Invitation
from services.responses.config import ResponsesSettings
from services.responses.main import create_app as create_responses
from services.responses.models import Respondent, Response
from shared.answer_id import answer_id_for
from shared.events import SURVEY_LANGUAGES
from shared.testing.fixtures import bearer, running_app, settings_from_env
from shared.testing.round import survey_token

ROUND = "paper-1"
EXEMPT_ONLY, EVERYONE = "492", "101"  # the plans: paper to the exempt only; to everyone unanswered
ANSWER_ID = re.compile(r"Svar-id (\d{5}-\d{5})")


async def test_an_exempt_citizen_gets_a_paper_questionnaire_whose_answers_count_once(service_env, dev_issuer):
    from dispatch_fakes import FakeHttpServer, sf1601_responder

    admin = bearer(dev_issuer.mint("kl-operator", ["rounds:admin", "kommuner:all"]))
    with FakeHttpServer(sf1601_responder(token="sf-token")) as sf:
        dispatch = create_dispatch(make_settings(service_env, letter_channel="sf1601", sf1601_endpoint=sf.url + "/kombi",
                                                 sf1601_bearer_token="sf-token", reminder_count=1))
        responses = create_responses(settings_from_env(ResponsesSettings, service_env))
        async with running_app(dispatch) as dispatch_client, running_app(responses) as responses_client:
            # The operator's plans; a paper step with a reminder the plan does not send is refused.
            bad = await dispatch_client.put(f"/rounds/{ROUND}/plan", headers=admin,
                                            json={"reminder_count": 1, "paper_questionnaire": {"reminder": 2}})
            assert bad.status_code == 422 and "paper_questionnaire.reminder is 2" in bad.text
            for kommunekode, everyone in ((EXEMPT_ONLY, False), (EVERYONE, True)):
                r = await dispatch_client.put(f"/rounds/{ROUND}/plan/{kommunekode}", headers=admin, json={
                    "reminder_count": 1, "paper_questionnaire": {"reminder": 1, "everyone_unanswered": everyone}})
                assert r.status_code == 200, r.text

            reminder_at = datetime.now(UTC) + timedelta(seconds=12)
            exempt_chunk = sample(service_env, ROUND, EXEMPT_ONLY, 3, exempt={0}, seed=1)
            everyone_chunk = sample(service_env, ROUND, EVERYONE, 2, seed=2)
            await produce(service_env, round_defined(ROUND, reminders_at=[reminder_at]), *exempt_chunk.events,
                          *everyone_chunk.events)

            # The operator previews the paper questionnaire once responses has offered it for print.
            preview_url = f"/rounds/{ROUND}/paper-questionnaire/{EXEMPT_ONLY}/preview.pdf"

            async def previewed():
                r = await dispatch_client.get(preview_url, headers=admin)
                assert r.status_code in (200, 404), r.text
                return r if r.status_code == 200 else None
            preview = await wait_for(previewed, 30, "the paper questionnaire's preview")
            assert preview.headers["content-type"] == "application/pdf"
            text = "".join(page.extract_text() for page in pypdf.PdfReader(io.BytesIO(preview.content)).pages)
            assert "Kære Eksempel Borgersen" in text and ANSWER_ID.search(text)
            english = await dispatch_client.get(preview_url, params={"language": "en"}, headers=admin)
            assert "Dear Eksempel Borgersen" in pypdf.PdfReader(io.BytesIO(english.content)).pages[0].extract_text()

            async def invited():
                counts = await step_statuses(dispatch, ROUND)
                return counts[("invitation", "letter", "sent")] == 5 and counts
            await wait_for(invited, 60, "five invitations sent")

            # One citizen of the "everyone" municipality answers on the web before the reminder.
            kommune_of = {inv.token_hash: inv.kommunekode for inv in await invitations(dispatch, ROUND)}
            tokens = {survey_token(r.body) for r in sf.requests if r.checked.get("kombi")}
            web_token = next(t for t in sorted(tokens) if kommune_of[token_hash(t)] == EVERYONE)

            async def web_answer():
                r = await responses_client.post(f"/api/survey/{web_token}/submission", json={"answers": {"q1": 4}})
                return r.status_code == 201 or None  # 404 until responses has learnt the link
            await wait_for(web_answer, 30, "the web answer")
            assert datetime.now(UTC) < reminder_at, "the web answer came after the reminder's date"

            async def reminded():
                counts = await step_statuses(dispatch, ROUND)
                return (counts[("reminder_1", "paper_exempt", "sent")] == 1 and counts[("reminder_1", "paper_all", "sent")] == 1
                        and counts) or None
            counts = await wait_for(reminded, 60, "the paper questionnaires")
            assert datetime.now(UTC) >= reminder_at
            assert counts[("reminder_1", "paper_exempt", "skipped")] == 2  # they have Digital Post
            assert counts[("reminder_1", "paper_all", "skipped")] == 1  # answered on the web
            # The exempt citizen's printed reminder letter stays home: the paper questionnaire carries it.
            await wait_for(lambda: _settled(dispatch), 30, "the reminder letters")
            counts = await step_statuses(dispatch, ROUND)
            assert (counts[("reminder_1", "letter", "sent")], counts[("reminder_1", "letter", "skipped")]) == (3, 2)
            assert sorted(await _skip_reasons(dispatch, "letter")) == ["answered", "paper_questionnaire"]

            # SF1601 got two physical-post deliveries of the paper questionnaire, each a PDF naming
            # its citizen's answer id and link.
            papers = [r for r in sf.requests if r.checked.get("kombi") == "Fysisk Post"
                      and b"Sp\xc3\xb8rgeskema p\xc3\xa5 papir.pdf" in r.body]
            assert len(papers) == 2
            # Fysisk Post: the exempt citizen's invitation and the two paper questionnaires, nothing else.
            assert len([r for r in sf.requests if r.checked.get("kombi") == "Fysisk Post"]) == 3
            answer_ids = {inv.token_hash: answer_id_for(inv.answer_seq) for inv in await invitations(dispatch, ROUND)}
            printed = {}
            for request in papers:
                text = "".join(page.extract_text() for page in pypdf.PdfReader(io.BytesIO(request.checked["pdf"])).pages)
                token = survey_token(request.body)
                assert token in text.replace("\n", "")
                printed[token] = ANSWER_ID.search(text).group(1)
                assert printed[token] == answer_ids[token_hash(token)]
            exempt_token = next(t for t in printed if kommune_of[token_hash(t)] == EXEMPT_ONLY)
            answer_id = printed[exempt_token]

            # The operator keys the exempt citizen's form in against its answer id: once.
            operator = bearer(dev_issuer.mint("paper-492", ["responses:paper"], EXEMPT_ONLY))
            typo = answer_id[:-1] + str((int(answer_id[-1]) + 1) % 10)
            r = await responses_client.post("/api/paper/responses", headers=operator,
                                            json={"answer_id": typo, "answers": {"q1": "enig"}})
            assert r.status_code == 422 and "check digit" in r.text
            entry = {"answer_id": answer_id.replace("-", " "), "answers": {"q1": "enig", "q13": "tilfreds"}}
            first = await responses_client.post("/api/paper/responses", headers=operator, json=entry)
            assert first.status_code == 201, first.text
            assert first.json()["mode"] == "paper" and first.json()["kommunekode"] == EXEMPT_ONLY
            second = await responses_client.post("/api/paper/responses", headers=operator,
                                                 json={**entry, "answers": {"q1": "uenig"}})
            assert second.status_code == 409 and "a second entry is refused and nothing was written" in second.text

            # A form whose citizen answered on the web is refused the same way; an id nobody has is 404.
            operator_101 = bearer(dev_issuer.mint("paper-101", ["responses:paper"], EVERYONE))
            late = await responses_client.post("/api/paper/responses", headers=operator_101, json={
                "answer_id": answer_ids[token_hash(web_token)], "answers": {"q1": "enig"}})
            assert late.status_code == 409 and "answered on the web" in late.text
            nobody = await responses_client.post("/api/paper/responses", headers=operator_101, json={
                "answer_id": answer_id_for(999_999_999), "answers": {"q1": "enig"}})
            assert nobody.status_code == 404 and "no questionnaire has answer id" in nobody.text

            async with responses.state.runtime.sessionmaker() as session:
                stored = (await session.execute(
                    sa.select(Response.mode, Response.answers).join(Respondent, Respondent.token_hash == Response.token_hash)
                    .where(Respondent.answer_id == answer_id))).all()
            assert stored == [("paper", {"q1": "enig", "q13": "tilfreds"})]

            # Dispatch stops the citizen's messages on the paper answer as on a web answer.
            exempt_pseudonym = next(inv.pseudonym for inv in await invitations(dispatch, ROUND)
                                    if inv.token_hash == token_hash(exempt_token))

            async def stopped():
                invs = {inv.pseudonym: inv.status for inv in await invitations(dispatch, ROUND)}
                return invs[exempt_pseudonym] == "answered" or None
            await wait_for(stopped, 30, "dispatch to learn the paper answer")

    submitted = await consume_all(service_env, "response.submitted", 2)
    assert sorted(e["mode"] for e in submitted) == ["paper", "web"]
    assert [e["pseudonym"] for e in submitted if e["mode"] == "paper"] == [exempt_pseudonym]
    offered = await consume_all(service_env, "questionnaire.offered", 1)
    assert {e["round_id"] for e in offered} == {ROUND} and set(offered[0]["questionnaires"]["*"]["languages"]) == {"da", "en"}
    # The round names no languages and allows drafts: it offers every language, and the letters list them all.
    assert offered[0]["questionnaires"]["*"]["offered_languages"] == list(SURVEY_LANGUAGES)


async def _settled(dispatch) -> bool:
    counts = await step_statuses(dispatch, ROUND)
    return sum(n for (step, channel, status), n in counts.items() if step == "reminder_1" and channel == "letter"
               and status in ("sent", "skipped")) == 5


async def _skip_reasons(dispatch, channel: str) -> list[str]:
    async with dispatch.state.runtime.sessionmaker() as session:
        return list((await session.execute(
            sa.select(DispatchStep.skip_reason).join(Invitation, Invitation.id == DispatchStep.invitation_id)
            .where(Invitation.round_id == ROUND, DispatchStep.step == "reminder_1", DispatchStep.channel == channel,
                   DispatchStep.status == "skipped"))).scalars())
